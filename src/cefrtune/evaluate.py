"""The evaluate stage: loss and perplexity of a model on list-format examples.

    cefrtune eval --model runs/a1-.../merged --data eval.json [--base gemma-3-270m] [--json]

Two definitions, both token-weighted mean NLL with perplexity = exp(loss):
- full_text: every token after the first (instruction + response) - the seed report's figure;
- response: the answer tokens only (what the model is trained and used for).
Baseline (base model) and tuned model go through the same code (`loss_metrics`).
"""

from __future__ import annotations

import math

import torch

from cefrtune.examples import Example
from cefrtune.features import collate, tokenize_examples
from cefrtune.loss import IGNORE, CausalLMLoss
from cefrtune.prompts import PromptStyle


def loss_metrics(model, tokenizer, style: PromptStyle, examples: list[Example], batch_size: int = 8) -> dict:
    """{full_text_loss, full_text_ppl, response_loss, response_ppl, full_text_tokens, response_tokens}.
    One forward pass serves both definitions: the response positions are a subset of the full
    text's, so their losses are summed from the same per-token NLLs."""
    loss_model = CausalLMLoss(model)
    full = tokenize_examples(examples, tokenizer, style, "full", None)
    response = tokenize_examples(examples, tokenizer, style, "response", None)
    device = next(model.parameters()).device
    sums = {"full_text": 0.0, "response": 0.0}
    was_training = model.training
    model.eval()
    order = sorted(range(len(full)), key=lambda i: len(full[i]["input_ids"]))  # little padding
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = collate([full[i] for i in rows], tokenizer.pad_token_id, device)
        losses = loss_model.token_losses(**batch).double()
        answer = collate([response[i] for i in rows], tokenizer.pad_token_id, device)["labels"][:, 1:] != IGNORE
        sums["full_text"] += float(losses.sum())
        sums["response"] += float(losses[answer].sum())
    model.train(was_training)
    result = {}
    for name, features in (("full_text", full), ("response", response)):
        tokens = sum(f["n_labels"] for f in features)
        loss = sums[name] / tokens
        result[f"{name}_loss"] = round(loss, 6)
        result[f"{name}_ppl"] = round(math.exp(loss), 6)
        result[f"{name}_tokens"] = tokens
    return result


def improvement(baseline: dict, tuned: dict) -> dict:
    """Relative reduction in % (positive = better), for loss and perplexity of both definitions."""
    out = {}
    for key in ("full_text_loss", "full_text_ppl", "response_loss", "response_ppl"):
        out[f"{key}_pct"] = round(100.0 * (baseline[key] - tuned[key]) / baseline[key], 2)
    return out


def evaluate(model_dir: str, data: str, base: str | None = None, batch_size: int = 8) -> dict:
    """Loss metrics of the tuned model at `model_dir` and of its base (read from the model's
    cefrtune metadata unless `base` is given), on the examples in `data`."""
    import json
    from pathlib import Path

    from cefrtune import models
    from cefrtune.examples import load_examples

    examples = load_examples(data)
    tuned_model, tokenizer, _ = models.load(model_dir, dtype=torch.float32)
    style = PromptStyle.load_or_default(model_dir, tokenizer)
    info_path = Path(model_dir) / "cefrtune_model.json"
    if base is None and info_path.exists():
        base = json.loads(info_path.read_text())["base_model"]
    result = {
        "data": str(data),
        "examples": len(examples),
        "tuned": loss_metrics(tuned_model, tokenizer, style, examples, batch_size),
    }
    del tuned_model
    if base:
        base_model, _, _ = models.load(base, dtype=torch.float32)
        result["base_model"] = base
        result["baseline"] = loss_metrics(base_model, tokenizer, style, examples, batch_size)
        result["improvement"] = improvement(result["baseline"], result["tuned"])
    return result
