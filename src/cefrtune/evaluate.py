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
from cefrtune.loss import CausalLMLoss
from cefrtune.prompts import PromptStyle
from cefrtune.train import evaluate_features, tokenize_examples


def loss_metrics(model, tokenizer, style: PromptStyle, examples: list[Example], batch_size: int = 8) -> dict:
    """{full_text_loss, full_text_ppl, response_loss, response_ppl, full_text_tokens, response_tokens}."""
    loss_model = CausalLMLoss(model)
    result = {}
    for name, loss_on in (("full_text", "full"), ("response", "response")):
        features = tokenize_examples(examples, tokenizer, style, loss_on, None)
        loss = evaluate_features(loss_model, features, batch_size, tokenizer.pad_token_id)
        result[f"{name}_loss"] = round(loss, 6)
        result[f"{name}_ppl"] = round(math.exp(loss), 6)
        result[f"{name}_tokens"] = sum(f["n_labels"] for f in features)
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
    result = {"data": str(data), "examples": len(examples), "tuned": loss_metrics(tuned_model, tokenizer, style, examples, batch_size)}
    del tuned_model
    if base:
        base_model, _, _ = models.load(base, dtype=torch.float32)
        result["base_model"] = base
        result["baseline"] = loss_metrics(base_model, tokenizer, style, examples, batch_size)
        result["improvement"] = improvement(result["baseline"], result["tuned"])
    return result
