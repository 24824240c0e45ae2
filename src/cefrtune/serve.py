"""Loading a model for generation: a merged folder, an adapter folder, or a base model.

    model, tokenizer, style = load_generator("runs/a1-.../merged")

The prompt style saved beside the model is used; a base model gets the default style for its
tokenizer (the baseline).
"""

from __future__ import annotations

from pathlib import Path

import torch

from cefrtune.prompts import PromptStyle


def load_generator(name: str, dtype: torch.dtype = torch.bfloat16):
    from cefrtune import models

    path = Path(name)
    if (path / "adapter_config.json").exists():
        import json

        from peft import PeftModel

        base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
        base_model, tokenizer, _ = models.load(_base_name(base), dtype=dtype)
        model = PeftModel.from_pretrained(base_model, path).merge_and_unload()
        return model.eval(), tokenizer, PromptStyle.load(path)
    model, tokenizer, _ = models.load(name, dtype=dtype)
    return model, tokenizer, PromptStyle.load_or_default(path, tokenizer)


def _base_name(recorded: str) -> str:
    """An adapter records its base as a path; the embedded model's cache path maps back to its name."""
    from cefrtune.models import EMBEDDED, cache_dir

    if Path(recorded).resolve() == (cache_dir() / "models" / EMBEDDED).resolve():
        return EMBEDDED
    return recorded
