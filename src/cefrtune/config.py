"""The run configuration: one typed dataclass, every field documented.

One path: defaults -> YAML preset (`configs/*.yaml`, or a path) -> CLI overrides. `validate`
collects every problem and raises one error listing them all, before any model is loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from cefrtune.turkish import LEVELS

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_PRESET = "a1-seed"
ATTENTION = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")


@dataclass
class RunConfig:
    # --- what to train ---
    model: str = "gemma-3-270m"
    """Base model: a preset name (gemma-3-270m, llama-3.2-1b-instruct), a local folder or a hub id."""
    level: str = "A1"
    """CEFR level (A1..C1); `cefrtune run --level all` runs every level."""
    data: str | None = None
    """Dataset file (JSONL or JSON list). Default: data/<level>.jsonl of the repository."""
    eval_fraction: float = 0.1
    """Share of examples held out for evaluation (the seed: 18 of 178)."""
    seed: int = 42
    """Seed for the split, LoRA initialisation and data order."""
    backend: str = "torch"
    """"torch" (cefrtune's trainer, CPU or GPU, runs under accelerate/torchrun) or "unsloth" (CUDA only)."""

    # --- sequence and batch ---
    max_seq_length: int = 512
    """Longest example in tokens; a longer example stops the run with its id (never truncated)."""
    per_device_train_batch_size: int = 16
    gradient_accumulation_steps: int = 4
    per_device_eval_batch_size: int = 8
    pad_to_multiple_of: int = 16
    """Training batches (and the per-epoch evaluation's) are padded to a length that is a
    multiple of this (1: to the longest example only). A bf16 matmul on CPU keeps about 0.9 MB of kernel state per distinct shape for
    the life of the process, so free lengths left 2-3 GB held after a full run's training; with
    16 there are at most 32 lengths (about 2.5 % more tokens computed)."""
    micro_batch_size: int | None = 8
    """Examples per forward/backward inside a per-device batch (same gradients, less activation
    memory and padding than the whole batch at once; on a 2-core CPU 8 trained about 9 % faster
    than 4, for about 0.3 GB more); None runs the whole per-device batch at once."""

    # --- optimisation ---
    learning_rate: float = 2e-4
    num_train_epochs: int = 10
    max_steps: int | None = None
    """Stop after this many optimizer steps (smoke runs); None trains every epoch."""
    early_stopping_patience: int | None = 2
    """Stop once the eval loss has not improved for this many epochs; the best epoch's adapter is
    kept either way, so the result does not change (the seed's A1 data peaks at epoch 4-5 of 10;
    later epochs only overfit). The schedule stays planned for every epoch. None trains them all."""
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lr_scheduler: str = "linear"
    """"linear" or "cosine" decay after warmup."""
    loss_on: str = "response"
    """"response" (answer tokens only, the default) or "full" (instruction + answer, the seed's)."""

    # --- LoRA ---
    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.0
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

    # --- generation in the pipeline ---
    generate: bool = True
    """Generate for every eval word list with baseline and tuned model and score the sentences."""
    max_new_tokens: int | None = None
    """Tokens a generated answer may have; None: 1.5 x the longest reference answer of the data."""
    generation_batch_size: int = 32
    """Word lists decoded together. Decoding is memory-bound on a CPU (every step reads all weights),
    so large batches cost little more per step than small ones."""
    merged_dtype: str = "bf16"
    """Dtype merged/ is saved in ("bf16": half the size of "fp32", the dtype generation uses; the
    merge itself is computed in fp32 either way)."""
    generation_dtype: str = "bf16"
    """Weights dtype while generating ("bf16" halves the memory traffic of each decoding step, or "fp32")."""
    checked_attempts: int = 6
    """Checked generation: regeneration rounds for failing sentences (0 turns checked mode off)."""
    checked_candidates: int = 4
    """Checked generation: sentences sampled for each failing sentence in a steered round (the
    first that passes is kept; a free round samples one). Measured in benchmarks/checked_generation.py."""
    name_words: bool = False
    """Response format `1. ev — sentence` (word named first), trained in and stripped on output."""

    extra: dict = field(default_factory=dict)
    """Free-form notes copied into metrics.json (e.g. the preset's provenance)."""

    def effective_batch(self, world_size: int = 1) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * world_size

    def data_path(self) -> Path:
        if self.data:
            return Path(self.data)
        return Path(__file__).resolve().parents[2] / "data" / f"{self.level.lower()}.jsonl"


class ConfigError(ValueError):
    """Every problem of a configuration, listed at once."""


def load_config(preset: str | None = None, overrides: dict | None = None) -> RunConfig:
    """defaults -> preset (a name in configs/ or a YAML path) -> overrides; validated."""
    values: dict = {}
    source = "defaults"
    if preset:
        path = preset_path(preset)
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a preset must be a YAML mapping of field: value")
        values.update(loaded)
        source = str(path)
    values.update(overrides or {})  # an explicit None (YAML null) overrides too: `--set max_steps=null`
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; known fields: {', '.join(sorted(known))}")
    config = RunConfig(**values)
    validate(config, source)
    return config


def preset_path(preset: str) -> Path:
    path = Path(preset)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    candidate = CONFIG_DIR / f"{preset}.yaml"
    if candidate.exists():
        return candidate
    names = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise ConfigError(f"no preset '{preset}': not a YAML file and not one of configs/ ({names})")


def validate(config: RunConfig, source: str = "config") -> None:
    problems = []

    def check(ok: bool, name: str, message: str) -> None:
        if not ok:
            problems.append(f"{name}: {message} (got {getattr(config, name)!r})")

    check(config.level in LEVELS, "level", f"one of {', '.join(LEVELS)}")
    check(0 < config.eval_fraction < 1, "eval_fraction", "between 0 and 1")
    check(config.backend in ("torch", "unsloth"), "backend", '"torch" or "unsloth"')
    for name in ("max_seq_length", "per_device_train_batch_size", "gradient_accumulation_steps", "per_device_eval_batch_size",
                 "num_train_epochs", "lora_r", "lora_alpha", "loss_chunk_size", "generation_batch_size", "pad_to_multiple_of"):
        value = getattr(config, name)
        check(isinstance(value, int) and value > 0, name, "a positive integer")
    check(isinstance(config.learning_rate, (int, float)) and config.learning_rate > 0, "learning_rate", "a positive number")
    check(0 <= config.warmup_ratio < 1, "warmup_ratio", "in [0, 1)")
    check(0 <= config.lora_dropout < 1, "lora_dropout", "in [0, 1)")
    check(config.lr_scheduler in ("linear", "cosine"), "lr_scheduler", '"linear" or "cosine"')
    check(config.loss_on in ("response", "full"), "loss_on", '"response" or "full"')
    check(config.train_dtype in ("bf16", "fp32"), "train_dtype", '"bf16" or "fp32"')
    check(config.generation_dtype in ("bf16", "fp32"), "generation_dtype", '"bf16" or "fp32"')
    check(config.merged_dtype in ("bf16", "fp32"), "merged_dtype", '"bf16" or "fp32"')
    check(config.compile in (None, True, False), "compile", "true, false or null (automatic)")
    check(config.max_steps is None or (isinstance(config.max_steps, int) and config.max_steps > 0), "max_steps", "a positive integer or null")
    check(config.early_stopping_patience is None or (isinstance(config.early_stopping_patience, int) and config.early_stopping_patience > 0),
          "early_stopping_patience", "a positive integer or null")
    check(isinstance(config.checked_attempts, int) and config.checked_attempts >= 0, "checked_attempts", "0 or more")
    check(isinstance(config.checked_candidates, int) and config.checked_candidates > 0, "checked_candidates", "a positive integer")
    check(config.target_modules == "all-linear" or (isinstance(config.target_modules, list) and config.target_modules),
          "target_modules", '"all-linear" or a list of module names')
    check(config.heap_trim_above_gb is None or (isinstance(config.heap_trim_above_gb, (int, float)) and config.heap_trim_above_gb > 0),
          "heap_trim_above_gb", "a positive number of GB or null")
    check(config.attention is None or config.attention in ATTENTION, "attention", f"null or one of {', '.join(ATTENTION)}")
    for name in ("train_subset", "eval_subset", "threads", "max_new_tokens", "micro_batch_size"):
        value = getattr(config, name)
        check(value is None or (isinstance(value, int) and value > 0), name, "a positive integer or null")
    if config.data is not None and not Path(config.data).exists():
        problems.append(f"data: file {config.data} does not exist")
    if problems:
        raise ConfigError(f"{source}: {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))


def to_dict(config: RunConfig) -> dict:
    return dataclasses.asdict(config)
