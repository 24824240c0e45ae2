"""The merge stage: base model + LoRA adapter -> one standard Hugging Face model folder.

    from cefrtune.merge import merge
    merge("gemma-3-270m", "runs/a1-.../adapter", "runs/a1-.../merged")

The folder holds safetensors, the tokenizer, a generation config whose stop tokens match the
prompt style, `prompt_style.json` and `cefrtune_model.json` (base model and revision); plain
`transformers.AutoModelForCausalLM.from_pretrained(folder)` loads it. Written to a temporary
folder first, then renamed; `cefrtune-files.json` records each file's size and sha256.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cefrtune.examples import atomic_folder
from cefrtune.prompts import PromptStyle


def merge(base: str, adapter_dir: str | Path, out_dir: str | Path, base_model=None, tokenizer=None, info: dict | None = None):
    """Merge the adapter into a fp32 copy of the base (or an already loaded PeftModel) and save;
    returns the merged model. The base model object is changed in place."""
    from peft import PeftModel

    from cefrtune import models

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    if base_model is None:
        base_model, tokenizer, _ = models.load(base, dtype=torch.float32)
    style = PromptStyle.load(adapter_dir)
    peft_model = base_model if isinstance(base_model, PeftModel) else PeftModel.from_pretrained(base_model, adapter_dir)
    merged = peft_model.merge_and_unload()
    merged.eval()
    stop_ids = sorted({tokenizer.eos_token_id} | {tokenizer.convert_tokens_to_ids(s) for s in style.stop_strings if s} - {None, tokenizer.unk_token_id})
    merged.generation_config.eos_token_id = stop_ids
    merged.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_folder(out_dir) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        style.save(tmp)
        style.save_chat_template(tmp)
        (tmp / "cefrtune_model.json").write_text(json.dumps({"base_model": base, **(info or {})}, indent=2, ensure_ascii=False))
        models.write_manifest(tmp)  # each file's size and sha256: a damaged copy is named when it is loaded
    return merged
