"""The merge stage: base model + LoRA adapter -> one standard Hugging Face model folder.

    from cefrtune.merge import merge
    merge("gemma-3-270m", "runs/a1-.../adapter", "runs/a1-.../merged", max_new_tokens=300)

The adapter is merged into an fp32 copy of the base; the folder is saved in `dtype` (bf16 by
default: half the size of fp32, and the dtype cefrtune generates in). It holds safetensors, the
tokenizer with a chat template that renders the training prompt (`chat_template.jinja`), a
generation config (greedy, stopping at the prompt style's end-of-turn token or EOS, at most
`max_new_tokens`), `prompt_style.json` and `cefrtune_model.json` (base model and revision); plain
`transformers.AutoModelForCausalLM.from_pretrained(folder)` loads it. Written to a temporary
folder first, then renamed; `cefrtune-files.json` records each file's size and sha256.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cefrtune.files import atomic_folder
from cefrtune.prompts import PromptStyle

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def merge(base: str, adapter_dir: str | Path, out_dir: str | Path, base_model=None, tokenizer=None,
          info: dict | None = None, dtype: str = "bf16", max_new_tokens: int | None = None):
    """Merge the adapter into a fp32 copy of the base (or an already loaded PeftModel) and save it
    in `dtype`; returns the merged model (in `dtype`). The base model object is changed in place."""
    from peft import PeftModel

    from cefrtune import models

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    if base_model is None:
        base_model, tokenizer, _ = models.load(base, dtype=torch.float32)
    style = PromptStyle.load(adapter_dir)
    peft_model = base_model if isinstance(base_model, PeftModel) else PeftModel.from_pretrained(base_model, adapter_dir)
    merged = peft_model.merge_and_unload()
    merged.eval()
    models.to_dtype(merged, DTYPES[dtype])
    config = merged.generation_config
    config.eos_token_id = sorted(set(style.stop_token_ids(tokenizer)) | {tokenizer.eos_token_id} - {None})
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = tokenizer.bos_token_id
    config.do_sample = False  # greedy: what cefrtune evaluates
    for name in ("temperature", "top_p", "top_k"):
        setattr(config, name, None)
    if max_new_tokens:
        config.max_new_tokens = max_new_tokens
    with atomic_folder(out_dir) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        style.save(tmp)
        style.save_chat_template(tmp)
        record = {"base_model": base, "dtype": dtype, **(info or {})}
        (tmp / "cefrtune_model.json").write_text(json.dumps(record, indent=2, ensure_ascii=False))
        models.write_manifest(tmp)  # each file's size and sha256: a damaged copy is named when it is loaded
    return merged
