"""The run configuration: one typed dataclass, every field documented.

One path: defaults -> YAML preset (shipped in `src/cefrtune/configs/`, or a path) -> CLI overrides. `validate`
collects every problem and raises one error listing them all, before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from cefrtune import resources
from cefrtune.errors import UserError
from cefrtune.generation_settings import GENERATION
from cefrtune.turkish import LEVELS

DEFAULT_PRESET = "a1"
ATTENTION = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
BASELINE_MODES = ("cached", "recompute", "skip")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class RunConfig:
    # --- what to train ---
    model: str = "gemma-3-270m"
    """Base model: a preset name (gemma-3-270m, llama-3.2-1b-instruct), a local folder or a hub id."""
    level: str = "A1"
    """CEFR level (A1..C1); `cefrtune run --level all` runs every level."""
    data: str | None = None
    """Dataset file (JSONL or JSON list). Default: the shipped datasets/<level>.jsonl."""
    max_examples: int | None = None
    """Use only the first N examples of the dataset, before the split (the seed presets: the 180
    A1 examples the seed run had; datasets/a1.jsonl has grown since). None uses them all."""
    eval_fraction: float = 0.1
    """Share of examples held out for evaluation (the seed: 18 of 178)."""
    seed: int = 42
    """Seed for the split, LoRA initialisation and data order."""
    backend: str = "torch"
    """"torch" (cefrtune's trainer, CPU or GPU, runs under accelerate/torchrun) or "unsloth" (CUDA only)."""
    device: str = "auto"
    """Where training and every later stage (evaluation, merge check, generation) run: "auto" (the GPU when
    torch sees one, else the CPU), "cpu" or "cuda". metrics.json records the device used."""

    # --- sequence and batch ---
    max_seq_length: int = 512
    """Longest example in tokens; a longer example stops the run with its id (never truncated)."""
    per_device_train_batch_size: int = 16
    """Training examples per device in one forward/backward pass (split further by micro_batch_size)."""
    gradient_accumulation_steps: int = 4
    """Batches whose gradients are summed before each optimizer step; the effective batch is
    per_device_train_batch_size x this x the number of devices (the seed: 16 x 4 = 64)."""
    per_device_eval_batch_size: int = 8
    """Examples per batch when the eval loss is computed (per epoch and for the baseline/tuned figures)."""
    pad_to_multiple_of: int = 16
    """Training batches (and the per-epoch evaluation's) are padded to a length that is a
    multiple of this (1: to the longest example only). A bf16 matmul on CPU keeps about 0.9 MB of
    kernel state per distinct shape for the life of the process, so free lengths left 2-3 GB held
    after a full run's training; with 16 there are at most 32 lengths (about 2.5 % more tokens
    computed)."""
    micro_batch_size: int | None = 8
    """Examples per forward/backward inside a per-device batch (same gradients, less activation
    memory and padding than the whole batch at once; on a 2-core CPU 8 trained about 9 % faster
    than 4, for about 0.3 GB more); None runs the whole per-device batch at once."""

    # --- optimisation ---
    learning_rate: float = 2e-4
    """Peak learning rate of AdamW for the LoRA weights, reached after warmup."""
    num_train_epochs: int = 10
    """Passes over the training split (early stopping may end training sooner)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (smoke runs); None trains every epoch."""
    early_stopping_patience: int | None = 2
    """Stop once the eval loss has not improved for this many epochs; the best epoch's adapter is
    kept either way, so the result does not change (the seed's A1 data peaks at epoch 4-5 of 10;
    later epochs only overfit). The schedule stays planned for every epoch. None trains them all."""
    warmup_ratio: float = 0.1
    """Share of the planned optimizer steps over which the learning rate rises linearly from 0."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay on the LoRA weights (0: none)."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm before each optimizer step."""
    lr_scheduler: str = "linear"
    """"linear" or "cosine" decay after warmup."""
    loss_on: str = "response"
    """"response" (answer tokens only, the default) or "full" (instruction + answer, the seed's)."""

    # --- LoRA ---
    lora_r: int = 128
    """LoRA rank: inner size of each adapter's two low-rank matrices (more capacity, more parameters)."""
    lora_alpha: int = 256
    """LoRA scaling: each adapter's update is multiplied by lora_alpha / lora_r."""
    lora_dropout: float = 0.0
    """Dropout on the adapters' input while training (0: none)."""
    target_modules: list[str] | str = "all-linear"
    """"all-linear" or a list of module names (q_proj, v_proj, ...)."""
    train_stop_token: bool = True
    """Also train the embedding row of the token that ends an answer (the prompt style's stop
    token, Gemma's `<end_of_turn>`; tied models share it with the LM head) through PEFT's
    `trainable_token_indices`. The embedded base never trained that row: it sits among about a
    thousand unused tokens (cosine 0.995), which LoRA on the linear layers cannot tell apart, so
    a tuned model wrote a stray token such as `bindingFields` where its answer should end and ran
    on. Costs one row of parameters; the merged model carries the trained row."""

    # --- speed ---
    train_dtype: str = "bf16"
    """Dtype of the frozen base weights while training: "bf16" (fast on CPUs with bf16 units) or "fp32"."""
    loss_chunk_size: int = 256
    """Rows of the LM head computed at once by the fused cross-entropy (the 262k-vocabulary logits are never whole)."""
    compile: bool | None = None
    """torch.compile each decoder layer (one shared graph) and the fused cross-entropy's softmax
    passes: about 1.5x faster steps on a 2-core CPU after a compile of about a minute (seconds
    once cached). None: on for CPU runs that train on at least 100k tokens (the default run:
    470k), off otherwise; true/false force it."""
    attention: str | None = None
    """Attention implementation while training: "eager", "sdpa", "flash_attention_2", ...
    None: "eager" on CPU (at these lengths its batched matmuls, compiled with the layer, beat the
    CPU flash-attention kernel of "sdpa": see the README's training-speed section), the model's
    own on GPU. Generation always uses the model's own."""
    heap_trim_above_gb: float | None = 4.0
    """Give freed heap memory back to the system after any micro-batch that leaves the process
    above this size (the full default run then peaks near 5 GB instead of 7, at no measurable
    speed cost: see benchmarks/train_memory.py). None trims only after each optimizer step."""
    threads: int | None = None
    """torch CPU threads; None leaves torch's default (all cores)."""

    # --- subsets (smoke runs) ---
    train_subset: int | None = None
    """Use only the first N training examples after the split."""
    eval_subset: int | None = None
    """Use only the first N eval examples after the split."""

    # --- generation in the pipeline ---
    generate: bool = True
    """Generate for every eval word list with baseline and tuned model and score the sentences."""
    max_new_tokens: int | None = None
    """Tokens a generated answer may have; None: 1.5 x the longest reference answer of the data."""
    generation_batch_size: int = GENERATION.batch_size
    """Word lists decoded together. Decoding is memory-bound on a CPU (every step reads all weights),
    so large batches cost little more per step than small ones."""
    merged_dtype: str = "bf16"
    """Dtype merged/ is saved in ("bf16": half the size of "fp32", the dtype generation uses; the
    merge itself is computed in fp32 either way)."""
    generation_dtype: str = GENERATION.dtype
    """Weights dtype while generating ("bf16" halves the memory traffic of each decoding step, or "fp32")."""
    checked_attempts: int = GENERATION.attempts
    """Checked generation: regeneration rounds for failing sentences (0 turns checked mode off)."""
    checked_candidates: int = GENERATION.candidates
    """Checked generation: sentences sampled for each failing sentence in a steered round (the
    passing one the model finds most probable is kept; a free round samples one). Measured in
    benchmarks/checked_generation.py."""
    checked_polish: int = GENERATION.polish
    """Checked generation: sentences sampled for every passing sentence in a last round (the one the
    model finds most probable, the sentence itself included, is kept; 0: no such round)."""
    baseline: str = "cached"
    """"cached" (reuse a matching earlier run's baseline, else compute and cache it), "recompute" or "skip" (none)."""
    name_words: bool = False
    """Response format `1. ev — sentence` (word named first), trained in and stripped on output."""

    extra: dict = field(default_factory=dict)
    """Free-form notes copied into metrics.json (e.g. the preset's provenance)."""

    def effective_batch(self, world_size: int = 1) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * world_size

    def data_path(self) -> Path:
        if self.data:
            return Path(self.data)
        return resources.data_path(f"{self.level.lower()}.jsonl")


class ConfigError(UserError, ValueError):
    """Every problem of a configuration, listed at once."""


# Fields a resumed run may change: they do not touch the training (what is generated and how
# fast, not what is learned). Any other change refuses `--resume`.
RESUMABLE_CHANGES = ("generate", "max_new_tokens", "generation_batch_size", "generation_dtype", "checked_attempts",
                     "checked_candidates", "checked_polish", "threads", "heap_trim_above_gb", "compile", "extra",
                     "per_device_eval_batch_size", "baseline")

# YAML 1.1 (PyYAML) reads `1e-4` (no dot) as a string; a float field accepts it and any other
# number Python's float() reads, but never a bool, infinity or NaN.
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def changed_fields(saved: dict, config: RunConfig) -> list[str]:
    """`field: saved -> now` for every training field that differs from a saved configuration."""
    now = to_dict(config)
    return [f"{name}: {saved.get(name)!r} -> {now[name]!r}" for name in now
            if name not in RESUMABLE_CHANGES and name in saved and saved[name] != now[name]]


def load_config(preset: str | None = None, overrides: dict | None = None) -> RunConfig:
    """defaults -> preset (a shipped preset's name or a YAML path) -> overrides; validated."""
    values: dict = {}
    source = "defaults"
    if preset:
        path = preset_path(preset)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: not a readable YAML preset ({' '.join(str(err).split())[:200]})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a preset must be a YAML mapping of field: value")
        values.update(loaded)
        source = str(path)
    values.update(overrides or {})  # an explicit None (YAML null) overrides too: `--set max_steps=null`
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(map(str, values)) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
    config = RunConfig(**{name: _coerce(name, value) for name, value in values.items()})
    validate(config, source)
    return config


def _coerce(name: str, value):
    """Numbers written as strings (`1e-4`, `"0.5"`) become numbers for the fields that hold them."""
    annotation = RunConfig.__dataclass_fields__[name].type
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        if annotation.startswith("float"):
            return float(value)
        if annotation.startswith("int") and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and annotation.startswith("float"):
        return float(value)
    return value


def _type_problem(name: str, value) -> str | None:
    """What is wrong with the type of `value` for field `name` (None if nothing): ints are not
    bools, floats are finite numbers, strings are strings."""
    annotation = RunConfig.__dataclass_fields__[name].type
    optional = annotation.endswith("| None")
    if value is None:
        return None if optional else "a value (null is not allowed)"
    kind = annotation.split("|")[0].strip()
    if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        return "a whole number" + (" or null" if optional else "")
    if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        return "a finite number (such as 0.1 or 2e-4)" + (" or null" if optional else "")
    if kind == "bool" and not isinstance(value, bool):
        return "true or false" + (" or null" if optional else "")
    if kind == "str" and not isinstance(value, str):
        return "a string" + (" or null" if optional else "")
    if kind == "dict" and not isinstance(value, dict):
        return "a mapping"
    return None


def preset_path(preset: str) -> Path:
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    try:
        return resources.preset_path(preset)
    except resources.MissingResource as err:
        raise ConfigError(str(err)) from None


def validate(config: RunConfig, source: str = "config") -> None:
    problems = []
    wrong_type = set()
    for f in fields(RunConfig):
        problem = _type_problem(f.name, getattr(config, f.name))
        if problem:
            wrong_type.add(f.name)
            problems.append(f"{f.name}: {problem} (got {getattr(config, f.name)!r})")

    def check(ok, name: str, message: str) -> None:
        # A field of the wrong type is reported once, above; its range is not checked.
        if name not in wrong_type and not ok():
            problems.append(f"{name}: {message} (got {getattr(config, name)!r})")

    check(lambda: config.level in LEVELS, "level", f"one of {', '.join(LEVELS)}")
    check(lambda: 0 < config.eval_fraction < 1, "eval_fraction", "between 0 and 1")
    check(lambda: config.backend in ("torch", "unsloth"), "backend", '"torch" or "unsloth"')
    check(lambda: config.device in DEVICES, "device", " or ".join(f'"{d}"' for d in DEVICES))
    check(lambda: config.device != "cuda" or _cuda_available(), "device",
          'torch sees no GPU here (torch.cuda.is_available() is False): use "auto" or "cpu", or a CUDA build of torch')
    for name in ("max_seq_length", "per_device_train_batch_size", "gradient_accumulation_steps",
                 "per_device_eval_batch_size", "num_train_epochs", "lora_r", "lora_alpha", "loss_chunk_size",
                 "generation_batch_size", "pad_to_multiple_of"):
        value = getattr(config, name)
        check(lambda: isinstance(value, int) and value > 0, name, "a positive integer")
    check(lambda: config.learning_rate > 0, "learning_rate", "a positive number")
    check(lambda: 0 <= config.warmup_ratio < 1, "warmup_ratio", "in [0, 1)")
    check(lambda: 0 <= config.lora_dropout < 1, "lora_dropout", "in [0, 1)")
    check(lambda: config.lr_scheduler in ("linear", "cosine"), "lr_scheduler", '"linear" or "cosine"')
    check(lambda: config.loss_on in ("response", "full"), "loss_on", '"response" or "full"')
    check(lambda: config.train_dtype in ("bf16", "fp32"), "train_dtype", '"bf16" or "fp32"')
    check(lambda: config.generation_dtype in ("bf16", "fp32"), "generation_dtype", '"bf16" or "fp32"')
    check(lambda: config.merged_dtype in ("bf16", "fp32"), "merged_dtype", '"bf16" or "fp32"')
    check(lambda: config.compile in (None, True, False), "compile", "true, false or null (automatic)")
    check(lambda: config.max_steps is None or config.max_steps > 0, "max_steps", "a positive integer or null")
    check(lambda: config.early_stopping_patience is None or config.early_stopping_patience > 0,
          "early_stopping_patience", "a positive integer or null")
    check(lambda: config.baseline in BASELINE_MODES, "baseline", " or ".join(f'"{m}"' for m in BASELINE_MODES))
    check(lambda: config.checked_attempts >= 0, "checked_attempts", "0 or more")
    check(lambda: config.checked_candidates > 0, "checked_candidates", "a positive integer")
    check(lambda: config.checked_polish >= 0, "checked_polish", "a whole number, 0 or more")
    check(lambda: config.target_modules == "all-linear"
          or (isinstance(config.target_modules, list) and bool(config.target_modules)),
          "target_modules", '"all-linear" or a list of module names')
    check(lambda: config.heap_trim_above_gb is None or config.heap_trim_above_gb > 0,
          "heap_trim_above_gb", "a positive number of GB or null")
    check(lambda: config.attention is None or config.attention in ATTENTION, "attention",
          f"null or one of {', '.join(ATTENTION)}")
    for name in ("train_subset", "eval_subset", "threads", "max_new_tokens", "micro_batch_size", "max_examples"):
        value = getattr(config, name)
        check(lambda value=value: value is None or value > 0, name, "a positive integer or null")
    check(lambda: 0 <= config.seed < 2**32, "seed", "a whole number from 0 to 4294967295")
    check(lambda: config.weight_decay >= 0, "weight_decay", "0 or more")
    check(lambda: config.max_grad_norm > 0, "max_grad_norm", "a positive number")
    check(lambda: config.model.strip() != "", "model", "a preset name, a model folder or a hub id")
    check(lambda: not isinstance(config.target_modules, list)
          or all(isinstance(m, str) and m for m in config.target_modules),
          "target_modules", "module names (strings)")
    if isinstance(config.data, str):
        if not Path(config.data).exists():
            problems.append(f"data: file {config.data} does not exist; give a JSONL or JSON list of examples")
        elif not Path(config.data).is_file():
            problems.append(f"data: {config.data} is not a file; give a JSONL or JSON list of examples")
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))


def to_dict(config: RunConfig) -> dict:
    return dataclasses.asdict(config)


def field_docs() -> dict[str, str]:
    """Each RunConfig field -> its doc, the string written under the field above (one source; empty
    when a field has none, which tests/test_config.py forbids)."""
    import ast
    import inspect

    body = ast.parse(inspect.getsource(RunConfig)).body[0].body
    docs = {}
    for node, following in zip(body, body[1:] + [None]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            literal = following.value if isinstance(following, ast.Expr) else None
            docs[node.target.id] = literal.value if isinstance(literal, ast.Constant) else ""
    return docs


def describe() -> str:
    """`cefrtune config`: the shipped presets (name and what their first comment says) and every
    field with its type, default and the first sentence of its doc."""
    import textwrap

    lines = [f"Presets (`cefrtune run --config NAME`, in {resources.preset_dir()}):"]
    for name, path in resources.presets().items():
        comment = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#") or line.startswith("#  "):  # the comment ends at the command line
                break
            comment.append(line.lstrip("#").strip())
        lines += textwrap.wrap(_first_sentence(" ".join(comment)).rstrip(":"), 116, initial_indent=f"  {name:22} ",
                               subsequent_indent=" " * 25)
    lines += ["", "Fields (defaults -> preset -> `--set FIELD=VALUE`):"]
    docs = field_docs()
    for f in fields(RunConfig):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        shown = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip()
        lines.append(f"  {f.name}: {f.type} = {shown}")
        lines += textwrap.wrap(_first_sentence(docs.get(f.name, "")), 116, initial_indent="      ",
                               subsequent_indent="      ")
    return "\n".join(lines)


def _first_sentence(text: str) -> str:
    """Up to the first full stop outside brackets (`Dataset file (JSONL or JSON list).`)."""
    text, depth = " ".join(text.split()), 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "." and depth == 0 and (i + 1 == len(text) or text[i + 1] == " "):
            return text[: i + 1]
    return text


# --- `cefrtune serve` ---
SERVE_HOST, SERVE_PORT = "127.0.0.1", 8000
"""Where `cefrtune serve` listens by default: loopback only; any other host needs an API key."""
SERVE_API_KEY_ENV = "CEFRTUNE_API_KEY"
"""The environment variable `cefrtune serve` reads its API key from when --api-key is not given."""


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
