"""`backend: unsloth`: the seed's own setup (Unsloth's loader and LoRA on one NVIDIA GPU).

    cefrtune run --config llama-3.2-1b-a1-seed --set backend=unsloth

Unsloth is an optional extra (`pip install 'cefrtune[unsloth]'`), never a requirement, and it
runs on one CUDA device. Only the model loading and the LoRA wrapping are Unsloth's
(`FastLanguageModel.from_pretrained` and `.get_peft_model`, with its gradient checkpointing and
patched kernels); everything else is cefrtune's trainer unchanged: the same data, prompt style,
token-weighted response loss, evaluation, best-adapter checkpoints and report. The adapter it
saves is a standard PEFT adapter, so merge, eval and generate treat it like any other.
"""

from __future__ import annotations

import importlib.util
import os

from cefrtune.errors import UserError


class BackendUnavailable(UserError, RuntimeError):
    pass


def check_unsloth(world_size: int = 1) -> None:
    """Raise BackendUnavailable, naming the default backend, unless Unsloth can run here."""
    import torch

    problems = []
    if not torch.cuda.is_available():
        problems.append("no CUDA device is visible (Unsloth trains on NVIDIA GPUs)")
    if importlib.util.find_spec("unsloth") is None:
        problems.append("the package is not installed (`pip install 'cefrtune[unsloth]'`)")
    if world_size > 1:
        problems.append(f"it trains on one GPU, not {world_size} processes (use the default backend for DDP/FSDP/ZeRO)")
    if problems:
        raise BackendUnavailable(
            "backend 'unsloth' cannot run here: " + "; ".join(problems)
            + ". Use the default backend instead (`--set backend=torch`), which runs on CPU and GPU "
            "and under accelerate/torchrun."
        )


def load(config, model_path: str, dtype):
    """Unsloth's loader and LoRA: returns (peft_model, tokenizer), the LoRA weights trainable."""
    os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")  # nothing leaves the machine
    from unsloth import FastLanguageModel  # imported first: Unsloth patches transformers on import

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=model_path,
        max_seq_length=config.max_seq_length,
        dtype=dtype,
        load_in_4bit=False,  # the seed trained 16-bit LoRA
        random_state=config.seed,
    )
    target = config.target_modules
    if target == "all-linear":
        target = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = FastLanguageModel.get_peft_model(
        model,
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target,
        bias="none",
        use_gradient_checkpointing="unsloth",
        random_state=config.seed,
    )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
