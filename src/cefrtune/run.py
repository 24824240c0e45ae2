"""The main job: split -> train -> evaluate baseline and tuned -> merge -> generate -> report.

    cefrtune run                       # the seed's settings on the embedded Gemma-3-270M, A1
    cefrtune run --config smoke        # a few steps, for a quick look
    cefrtune run --output runs/mine --resume

Each run gets its own folder (`runs/<level>-<time>` unless --output), never overwriting another
run; `--resume` continues the folder's last epoch checkpoint. Under accelerate/torchrun every
rank trains; rank 0 alone evaluates, merges, generates and writes the report.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from pathlib import Path

import torch
import yaml

from cefrtune import baseline_cache, memory, report
from cefrtune.config import RunConfig, changed_fields, to_dict
from cefrtune.data import split_examples
from cefrtune.errors import UserError
from cefrtune.examples import DataError, load_examples, write_examples
from cefrtune.files import recover_folder, write_text_atomic

# The merge check's limit on |merged - adapter-on-base| / adapter-on-base response loss, by the
# dtype merged/ is saved in. fp32: the merge itself is exact up to summation order. bf16 keeps 8
# significant bits (each weight rounded by up to 2^-9 of itself): saving the embedded base in bf16
# moved its response loss on 6 A1 eval examples by 6.9e-5 relative (2.873743 -> 2.873940). A wrong
# merge moves it far more: a lost end-of-turn row alone costs ~5 nats at one answer token in ~170,
# about 3e-2 relative. A tuned model's LoRA deltas are rounded too: the smoke run's bf16 merged model
# moved by 2.9e-3. 1e-2 leaves that room and still catches a broken merge.
MERGE_TOLERANCE = {"fp32": 1e-3, "bf16": 1e-2}
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


# What `cefrtune run` writes into its folder: a folder holding only these and no checkpoint (a run
# that failed before its first epoch ended) is cleared and reused by a rerun.
RUN_FILES = ("config.yaml", "data", "tensorboard", "adapter", "checkpoints", "merged")
VALIDATION_ERRORS_SHOWN = 10
EXAMPLE_WORDS = 10  # words (and sentences) of a training example, as `cefrtune data validate` expects


class MergeMismatch(RuntimeError):
    pass


class RunFolderError(UserError):
    """A run folder that cannot be used as asked (finished, not resumable, changed config, ...)."""


def run(config: RunConfig, output: str | Path | None = None, resume: bool = False,
        split: tuple[list, list] | None = None) -> Path:
    """Run the whole pipeline for one level; returns the run folder. `split` gives the train and
    eval examples directly (the joint all-levels adapter) instead of splitting `config.data`."""
    from cefrtune import models
    from cefrtune.evaluate import improvement, loss_metrics
    from cefrtune.features import tokenize_examples
    from cefrtune.merge import merge
    from cefrtune.prompts import PromptStyle
    from cefrtune.train import train

    started = time.perf_counter()
    data_path = config.data_path()
    is_main = _is_main_process()
    run_dir = _check_run_dir(config, output, resume)
    names = _split_files(run_dir, config.level)
    if resume and split is None and all(path.exists() for path in names.values()):
        # The run's own split: the dataset file may have changed since.
        train_examples, eval_examples = (load_examples(names[name]) for name in ("train", "eval"))
    else:
        if split is None:
            check_dataset(data_path)
            examples = [e for e in load_examples(data_path) if e.level == config.level][: config.max_examples]
            if len(examples) < 2:
                raise DataError(f"{data_path}: {len(examples)} example(s) of level {config.level}; need at least 2")
            train_examples, eval_examples = split_examples(examples, config.eval_fraction, config.seed)
        else:
            train_examples, eval_examples = split
        train_examples = train_examples[: config.train_subset] if config.train_subset else train_examples
        eval_examples = eval_examples[: config.eval_subset] if config.eval_subset else eval_examples
    check_split(train_examples, eval_examples, data_path)
    run_dir = _make_run_dir(run_dir, output is None and not resume)
    names = _split_files(run_dir, config.level)
    if is_main and not resume:
        write_text_atomic(run_dir / "config.yaml", yaml.safe_dump(to_dict(config), allow_unicode=True, sort_keys=False))
        write_examples(names["train"], train_examples, as_json_list=True)
        write_examples(names["eval"], eval_examples, as_json_list=True)

    result = train(config, train_examples, eval_examples, run_dir, resume=resume)
    memory.release()  # the training model is gone; give its heap back before the next stage loads
    peaks = {"train": memory.peak_rss_mb()}  # peak RSS so far, after each stage: which stage sets the peak
    held = {"after_train": memory.rss_mb()}  # RSS between stages, after the heap is given back
    if not is_main:
        return run_dir

    device = models.pick_device(config.device)  # every stage after training runs where training ran
    base_model, tokenizer, resolved = models.load(config.model, dtype=torch.float32, device=device)
    style = PromptStyle.load(result.adapter_dir)
    # adapter_config.json names a folder on this machine; this names the base anyone can get.
    write_text_atomic(
        result.adapter_dir / "cefrtune_model.json",
        json.dumps(
            {
                "base_model": config.model,
                "base_model_original": models.ORIGINALS.get(config.model, config.model),
                "base_model_source": resolved.source,
                "base_model_revision": resolved.revision,
                "level": config.level,
            },
            indent=2,
        ),
    )
    longest = max(
        len(f["input_ids"]) for f in tokenize_examples(train_examples + eval_examples, tokenizer, style, "full", None)
    )
    from cefrtune.generation import default_max_new_tokens

    max_new = config.max_new_tokens or default_max_new_tokens(train_examples + eval_examples, tokenizer, style)
    train_sentences = [s for e in train_examples for s in e.sentences]
    # The baseline's figures come from the cache when an earlier run computed the same ones; then the
    # base model is neither evaluated nor loaded again for generation.
    cached = baseline_cache.lookup(config, resolved, style, eval_examples, train_sentences, max_new)
    print(f"cefrtune: evaluating {'the baseline and ' if cached.needed else ''}the tuned model ...", flush=True)
    baseline = loss_metrics(base_model, tokenizer, style, eval_examples, config.per_device_eval_batch_size) \
        if cached.needed else cached.results

    from peft import PeftModel

    peft_model = PeftModel.from_pretrained(base_model, result.adapter_dir)
    adapter = loss_metrics(peft_model, tokenizer, style, eval_examples, config.per_device_eval_batch_size)
    info = {"base_model_revision": resolved.revision, "level": config.level, "run_dir": str(run_dir)}
    merge(config.model, result.adapter_dir, run_dir / "merged", base_model=peft_model, tokenizer=tokenizer, info=info,
          dtype=config.merged_dtype, max_new_tokens=max_new)
    peaks["evaluate_and_merge"] = memory.peak_rss_mb()
    del peft_model, base_model
    memory.release()
    held["after_merge"] = memory.rss_mb()
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(run_dir / "merged", dtype=torch.float32).to(device)  # what users load
    tuned = loss_metrics(merged, tokenizer, style, eval_examples, config.per_device_eval_batch_size)
    difference = abs(tuned["response_loss"] - adapter["response_loss"]) / adapter["response_loss"]
    tolerance = MERGE_TOLERANCE[config.merged_dtype]
    if difference > tolerance:
        raise MergeMismatch(
            f"merged model response loss {tuned['response_loss']:.6f} differs from adapter-on-base "
            f"{adapter['response_loss']:.6f} by {difference:.2e} (> {tolerance}, {config.merged_dtype}); "
            "the merged model is not trustworthy"
        )
    samples = []
    reference = {}
    if config.generate:
        from cefrtune.metrics import score

        gen_dtype = DTYPES[config.generation_dtype]
        # the fp32 copy is no longer needed: halve it before the baseline loads
        merged = models.to_dtype(merged, gen_dtype)
        memory.release()
        held["before_generation"] = memory.rss_mb()
        if cached.needed:
            base_model, _, _ = models.load(config.model, dtype=gen_dtype, device=device)
            baseline.update(_generation(base_model, tokenizer, style, eval_examples, train_sentences, config, max_new,
                                        "baseline"))
            peaks["generate_baseline"] = memory.peak_rss_mb()
            del base_model
            memory.release()
            held["after_generate_baseline"] = memory.rss_mb()
        tuned.update(_generation(merged, tokenizer, style, eval_examples, train_sentences, config, max_new, "tuned"))
        peaks["generate_tuned"] = memory.peak_rss_mb()
        reference = score(
            [{"level": e.level, "words": e.words, "sentences": e.sentences} for e in eval_examples], train_sentences
        )
        reference.pop("per_item")
        baseline_sentences = baseline["generation_sentences"] if baseline else [None] * len(eval_examples)
        samples = [
            {"level": e.level, "words": e.words, "baseline": b, "tuned": t}
            for e, b, t in zip(eval_examples, baseline_sentences, tuned["generation_sentences"])
        ]
    if cached.needed:
        baseline_cache.store(cached, baseline, run_dir)
    metrics = _metrics(config, run_dir, data_path, resolved, style, result, train_examples, eval_examples, longest,
                       baseline, tuned, adapter, difference, reference, time.perf_counter() - started, peaks, held)
    metrics["baseline_source"] = cached.record
    if baseline is None:
        del metrics["baseline"]
    else:
        metrics["improvement"] = improvement(baseline, tuned)
    for side in (baseline or {}, tuned):
        side.pop("generation_sentences", None)
    report.write(run_dir, metrics, result.history, samples)
    from cefrtune.modelcard import write_cards

    write_cards(run_dir, metrics, style, tokenizer)
    print(summary(metrics), flush=True)
    return run_dir


def _generation(
    model, tokenizer, style, eval_examples, train_sentences, config: RunConfig, max_new_tokens: int, name: str
) -> dict:
    from cefrtune.generation import Request, generate_checked, generate_lists
    from cefrtune.metrics import score

    requests = [Request(e.level, e.words) for e in eval_examples]
    print(f"cefrtune: generating with the {name} model ...", flush=True)
    started = time.perf_counter()
    raw = generate_lists(model, tokenizer, style, requests, config.generation_batch_size, max_new_tokens, progress=True)
    seconds = time.perf_counter() - started
    scored = score(raw, train_sentences)
    scored["seconds"] = round(seconds, 2)
    scored["sentences_per_s"] = round(sum(len(r["words"]) for r in raw) / seconds, 3)
    out = {"generation": scored, "generation_sentences": [r["sentences"] for r in raw]}
    if config.checked_attempts:
        results, checked = generate_checked(
            model,
            tokenizer,
            style,
            requests,
            config.checked_attempts,
            train_sentences,
            config.generation_batch_size,
            max_new_tokens,
            seed=config.seed,
            progress=True,
            candidates=config.checked_candidates,
            polish=config.checked_polish,
        )
        checked["flagged_sentences"] = [dict(f, words=r["words"]) for r in results for f in r["flagged"]][:50]
        out["checked_generation"] = checked
    return out


def _metrics(config, run_dir, data_path, resolved, style, result, train_examples, eval_examples, longest,
             baseline, tuned, adapter, difference, reference, wall, peaks, held) -> dict:
    cfg = to_dict(config)
    from cefrtune.models import pick_device
    from cefrtune.turkish import LEVELS

    metrics = {
        "level": "+".join(sorted({e.level for e in train_examples}, key=LEVELS.index)) or config.level,
        "run_dir": str(run_dir),
        "base_model": config.model,
        "base_model_source": resolved.source,
        "base_model_revision": resolved.revision,
        "device": str(pick_device(config.device)),
        "prompt_style": style.kind + (" (word named first)" if style.name_words else ""),
        "data": str(data_path),
        "data_sha256": hashlib.sha256(Path(data_path).read_bytes()).hexdigest(),
        "seed": config.seed,
        "eval_fraction": config.eval_fraction,
        "train_examples": len(train_examples),
        "eval_examples": len(eval_examples),
        "longest_example_tokens": longest,
        "world_size": result.world_size,
        "effective_batch": result.effective_batch,
        "steps_per_epoch": result.steps_per_epoch,
        "total_steps": result.total_steps,
        "steps_run": result.steps_run,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "train_runtime_s": round(result.train_runtime_s, 2),
        "train_tokens": result.train_tokens,
        "train_tokens_per_s": round(result.train_tokens_per_s, 2),
        "initial_train_loss": round(result.initial_train_loss, 6),
        "final_train_loss": round(result.final_train_loss, 6),
        "best_eval_loss": round(result.best_eval_loss, 6),
        "best_eval_epoch": result.best_eval_epoch,
        "baseline": baseline,
        "tuned": tuned,
        "adapter_on_base": adapter,
        "merge_check": {
            "adapter": adapter["response_loss"],
            "merged": tuned["response_loss"],
            "relative_difference": difference,
            "merged_dtype": config.merged_dtype,
            "tolerance": MERGE_TOLERANCE[config.merged_dtype],
        },
        "run_wall_s": round(wall, 1),
        "peak_rss_mb": memory.peak_rss_mb(),
        "peak_rss_mb_after_stage": peaks,
        "rss_mb_between_stages": held,
    }
    if reference:
        metrics["reference_generation"] = reference
    for key in (
        "max_seq_length", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate",
        "num_train_epochs", "max_steps", "early_stopping_patience", "warmup_ratio", "lr_scheduler",
        "lora_r", "lora_alpha", "lora_dropout", "target_modules", "loss_on", "train_dtype",
        "train_stop_token", "merged_dtype",
    ):
        metrics[key] = cfg[key]
    return metrics


def summary(m: dict) -> str:
    lines = [
        "",
        f"cefrtune run {m['level']} finished in {m['run_wall_s']:.0f} s -> {m['run_dir']}",
        f"  trained {m['steps_run']} of {m['total_steps']} planned steps ({m['steps_per_epoch']}/epoch"
        f"{', stopped early' if m['stopped_early'] else ''}) on {m['train_examples']} examples in "
        f"{m['train_runtime_s']:.0f} s, {m['train_tokens_per_s']:.0f} tokens/s; "
        f"best eval loss {m['best_eval_loss']:.3f} (epoch {m['best_eval_epoch']})",
        f"  {'':24}{'baseline':>10}{'tuned':>10}{'improvement':>13}",
    ]
    base = m.get("baseline")  # absent with `baseline: skip`
    for key in ("full_text_loss", "full_text_ppl", "response_loss", "response_ppl"):
        lines.append(f"  {key:24}{_cell(base, key)}{m['tuned'][key]:>10.3f}"
                     + (f"{m['improvement'][key + '_pct']:>12.1f}%" if base else f"{'-':>13}"))
    if "generation" in m["tuned"]:
        for key in ("format_valid", "target_word_used", "unknown_token_rate"):
            lines.append(f"  {key:24}{_cell(base and base['generation'], key)}{m['tuned']['generation'][key]:>10.3f}")
    source = m.get("baseline_source", {})
    if source.get("source") == "cache":
        lines.append(f"  baseline from the cache {source['path']} (computed by {source['computed_by']})")
    elif source.get("source") == "skipped":
        lines.append("  baseline skipped (baseline: skip)")
    if "checked_generation" in m["tuned"]:
        c = m["tuned"]["checked_generation"]
        lines.append(f"  checked generation (tuned): pass rate {c['pass_rate_before']:.3f} -> {c['pass_rate']:.3f}, "
                     f"{c['mean_attempts']:.2f} attempts/sentence, {c['sentences_per_s']:.2f} sentences/s")
    lines.append(f"  report: {m['run_dir']}/report.md")
    return "\n".join(lines)


def _cell(figures: dict | None, key: str) -> str:
    return f"{figures[key]:>10.3f}" if figures else f"{'-':>10}"


def _split_files(run_dir: Path, level: str) -> dict[str, Path]:
    folder = run_dir / "data"
    return {name: folder / f"training_data_{level.lower()}_list_format_{name}.json" for name in ("train", "eval")}


def check_dataset(path: Path) -> None:
    """`cefrtune data validate` on the dataset before any model loads: its errors stop the run
    (the first few are named), its warnings are counted."""
    from cefrtune.data import validate

    report_ = validate([path], n=EXAMPLE_WORDS)
    errors, warnings = report_.errors, report_.warnings
    if errors:
        shown = "\n".join(f"  {p}" for p in errors[:VALIDATION_ERRORS_SHOWN])
        hidden = len(errors) - VALIDATION_ERRORS_SHOWN
        more = f"\n  ... and {hidden} more" if hidden > 0 else ""
        raise DataError(f"{path}: {len(errors)} error(s) in the dataset; fix them first "
                        f"(`cefrtune data validate {path}` lists all):\n{shown}{more}")
    if warnings and _is_main_process():
        print(f"cefrtune: {path}: {len(warnings)} warning(s) (see `cefrtune data validate {path}`)", flush=True)


def check_split(train_examples: list, eval_examples: list, data_path) -> None:
    """Train and eval must both hold examples and share no sentence: an eval loss measured on
    sentences the adapter trained on says nothing."""
    from cefrtune.data import _sentence_key

    if not train_examples:
        raise DataError(f"{data_path}: no training example left after the split (every example shares a sentence with "
                        "the eval set, or train_subset is 0); add examples or lower eval_fraction")
    if not eval_examples:
        raise DataError(f"{data_path}: no eval example after the split; add examples or raise eval_fraction")
    eval_keys = {_sentence_key(s) for e in eval_examples for s in e.sentences}
    shared = [e for e in train_examples if any(_sentence_key(s) in eval_keys for s in e.sentences)]
    if shared:
        raise DataError(f"{data_path}: {len(shared)} training example(s) share a sentence with the eval set "
                        f"(e.g. {shared[0].id or shared[0].origin}); the eval loss would be measured on "
                        "trained sentences")


def _check_run_dir(config: RunConfig, output, resume: bool) -> Path:
    """The run folder to use, checked (nothing is created or changed here)."""
    if output is None:
        if resume:
            raise RunFolderError("--resume needs --output: the run folder to continue")
        return Path("runs") / f"{config.level.lower()}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(output)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"{run_dir} is a file, not a run folder; choose another --output")
    if resume and run_dir.is_dir() and _is_main_process():
        for folder in (run_dir / "checkpoints" / "last", run_dir / "adapter", run_dir / "merged"):
            recover_folder(folder)  # a crash between the two renames of a folder replacement
    finished = (run_dir / "metrics.json").exists()
    checkpoint = (run_dir / "checkpoints" / "last" / "trainer_state.json").exists()
    if resume:
        if finished:
            raise RunFolderError(f"{run_dir} holds a finished run (metrics.json); there is nothing to resume. "
                                 "Start a new run with another --output")
        if not checkpoint:
            raise RunFolderError(f"{run_dir}: no checkpoint to resume (expected {run_dir}/checkpoints/last; the run "
                                 "ended before its first epoch did). Rerun the same command without --resume")
        saved = run_dir / "config.yaml"
        if saved.exists():
            changed = changed_fields(yaml.safe_load(saved.read_text(encoding="utf-8")) or {}, config)
            if changed:
                raise RunFolderError(f"{run_dir} was trained with another configuration: {'; '.join(changed)}. "
                                     f"Resume with the same settings (see {saved}), or start a new run")
        return run_dir
    if _is_main_process() and run_dir.exists() and any(run_dir.iterdir()):
        if finished or checkpoint:
            raise RunFolderError(f"{run_dir} already holds a run; choose another --output"
                                 + ("" if finished else " or pass --resume to continue it"))
        foreign = sorted(p.name for p in run_dir.iterdir() if not _written_by_run(p.name))
        if foreign:
            raise RunFolderError(f"{run_dir} is not empty ({', '.join(foreign[:5])}); choose another --output")
    return run_dir


def _written_by_run(name: str) -> bool:
    """A name `cefrtune run` writes into its folder before the first checkpoint (or its temporary)."""
    return name in RUN_FILES or any(name.startswith(f".{known}") for known in RUN_FILES)


def _make_run_dir(run_dir: Path, default_name: bool) -> Path:
    """Create the run folder. A folder left by a run that failed before its first checkpoint is
    cleared of what that run wrote; a default name taken by a run started in the same second
    gets a suffix (-2, -3, ...)."""
    import os
    import shutil

    if not _is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        return run_dir
    if default_name:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        base = run_dir
        for n in range(2, 1000):
            try:
                os.mkdir(run_dir)  # exclusive: two runs never share a folder
                return run_dir
            except FileExistsError:
                run_dir = base.with_name(f"{base.name}-{n}")
        raise RunFolderError(f"{base}: too many runs started in the same second; pass --output")
    if run_dir.exists() and not (run_dir / "checkpoints" / "last" / "trainer_state.json").exists():
        left = [p for p in run_dir.iterdir() if _written_by_run(p.name)]
        if left:
            print(f"cefrtune: {run_dir}: clearing what a run that failed before its first checkpoint left", flush=True)
        for path in left:
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _is_main_process() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0


def run_levels(config: RunConfig, levels: list[str], output: str | Path | None = None, joint: bool = False) -> Path:
    """`cefrtune run --level all`: one adapter per level, one after another (each level's run
    folder under `output`), then a cross-level report comparing them and checking that the
    levels really differ (level-ordering table of reference and generated sentences).

    A level whose folder under `output` already holds a finished run (its metrics.json) is not
    trained again: levels trained concurrently, one `cefrtune run --level X --output OUT/x` per
    device or machine, are collected into the cross-level report by running this afterwards.

    With `joint`, one more adapter is trained on every level's train split at once (the level is
    in each prompt) and evaluated on each level's eval split, next to the per-level adapters."""
    import dataclasses

    from cefrtune.data import level_ordering

    output = Path(output or Path("runs") / f"levels-{datetime.now().strftime('%Y%m%d-%H%M%S')}")
    if (output / "levels.json").exists():
        raise FileExistsError(f"{output} already holds a cross-level report; choose another --output")
    check_levels(config, [lvl for lvl in levels if not (output / lvl.lower() / "metrics.json").exists()])
    per_level = {}
    for level in levels:
        finished = output / level.lower() / "metrics.json"
        if finished.exists():
            print(f"cefrtune: {level}: using the finished run in {finished.parent}", flush=True)
        else:
            level_config = dataclasses.replace(config, level=level)
            run(level_config, output=output / level.lower())
        per_level[level] = json.loads(finished.read_text())
    reference = {}
    generated = {}
    for level, metrics in per_level.items():
        run_dir = Path(metrics["run_dir"])
        for split in ("train", "eval"):
            for example in load_examples(run_dir / "data" / f"training_data_{level.lower()}_list_format_{split}.json"):
                reference.setdefault(level, []).extend(example.sentences)
        items = metrics.get("tuned", {}).get("generation", {}).get("per_item", [])
        generated[level] = [s["sentence"] for item in items for s in item["sentences"] if s["sentence"]]
    summary = {
        "levels": list(per_level),
        "per_level": {
            level: {
                key: m[key]
                for key in (
                    "train_examples",
                    "eval_examples",
                    "total_steps",
                    "steps_run",
                    "train_runtime_s",
                    "best_eval_loss",
                    "baseline",
                    "tuned",
                    "improvement",
                )
                if key in m
            }
            for level, m in per_level.items()
        },
        "ordering_reference": level_ordering(reference),
        "ordering_generated": level_ordering(generated) if any(generated.values()) else {},
    }
    for entry in summary["per_level"].values():
        for side in ("baseline", "tuned"):
            if "generation" in entry.get(side, {}):
                entry[side]["generation"] = {k: v for k, v in entry[side]["generation"].items() if k != "per_item"}
    if joint:
        summary["joint"] = _joint(config, per_level, output / "joint")
    write_text_atomic(output / "levels.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    write_text_atomic(output / "levels_report.md", report.render_levels(summary))
    print(f"cefrtune: cross-level report -> {output / 'levels_report.md'}", flush=True)
    return output


def check_levels(config: RunConfig, levels: list[str]) -> None:
    """Before several levels train one after another: every level's dataset passes validation and
    every example a level will train or evaluate on fits max_seq_length, so that a late level (C1's
    examples are the longest) cannot stop the run after the earlier levels trained for hours."""
    import dataclasses

    from transformers import AutoTokenizer

    from cefrtune import models
    from cefrtune.features import TooLongError, encode
    from cefrtune.prompts import PromptStyle

    if not levels:
        return
    tokenizer = AutoTokenizer.from_pretrained(models.resolve(config.model).path)
    style = PromptStyle.for_tokenizer(tokenizer, name_words=config.name_words)
    longest = {}  # level -> (tokens, example)
    for level in levels:
        path = dataclasses.replace(config, level=level).data_path()
        check_dataset(path)
        examples = [e for e in load_examples(path) if e.level == level][: config.max_examples]
        if len(examples) < 2:
            raise DataError(f"{path}: {len(examples)} example(s) of level {level}; need at least 2")
        train_examples, eval_examples = split_examples(examples, config.eval_fraction, config.seed)
        used = train_examples[: config.train_subset] + eval_examples[: config.eval_subset]
        longest[level] = max(((sum(map(len, encode(e, tokenizer, style))), e) for e in used), key=lambda pair: pair[0])
    too_long = {level: pair for level, pair in longest.items() if pair[0] > config.max_seq_length}
    if not too_long:
        return
    fits = max(tokens for tokens, _ in longest.values())
    named = "\n".join(f"  {level}: {e.origin}{f' ({e.id})' if e.id else ''} has {tokens} tokens"
                      for level, (tokens, e) in too_long.items())
    from cefrtune.config import load_config

    preset = " or `--config all-levels`" if load_config("all-levels").max_seq_length >= fits else ""
    raise TooLongError(f"max_seq_length={config.max_seq_length} is too small for {len(too_long)} of the "
                       f"{len(levels)} level(s); nothing was trained. The longest example of each:\n{named}\n"
                       f"Rerun with `--set max_seq_length={fits}` (fits every level){preset}.")


def _joint(config: RunConfig, per_level: dict, out: Path) -> dict:
    """Train one adapter on the union of the per-level train splits; response loss per level."""
    import dataclasses

    from transformers import AutoModelForCausalLM

    from cefrtune import models
    from cefrtune.evaluate import loss_metrics
    from cefrtune.prompts import PromptStyle

    splits = {}
    for level, metrics in per_level.items():
        folder = Path(metrics["run_dir"]) / "data"
        splits[level] = tuple(
            load_examples(folder / f"training_data_{level.lower()}_list_format_{name}.json")
            for name in ("train", "eval")
        )
    train_all = [e for train, _ in splits.values() for e in train]
    eval_all = [e for _, evaluation in splits.values() for e in evaluation]
    joint_config = dataclasses.replace(config, level=list(per_level)[0], generate=False)
    run_dir = run(joint_config, output=out, split=(train_all, eval_all))
    _, tokenizer, _ = models.load(config.model, dtype=torch.float32)
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "merged", dtype=torch.float32)
    merged.to(models.pick_device(config.device))
    style = PromptStyle.load(run_dir / "merged")
    result = {}
    for level, (_, evaluation) in splits.items():
        joint_loss = loss_metrics(merged, tokenizer, style, evaluation, config.per_device_eval_batch_size)
        result[level] = {"joint_response_loss": joint_loss["response_loss"],
                         "per_level_response_loss": per_level[level]["tuned"]["response_loss"]}
    return result
