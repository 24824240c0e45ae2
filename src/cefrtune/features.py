"""Examples as token ids: what training, evaluation and generation feed the model.

    from cefrtune.features import tokenize_examples, collate
    features = tokenize_examples(examples, tokenizer, style, loss_on="response", max_seq_length=512)
    batch = collate(features[:8], tokenizer.pad_token_id, "cpu")

`tokenize_examples` renders each example with the prompt style and returns its input ids and
labels (prompt tokens are IGNORE unless the loss is on the full text), refusing any example over
`max_seq_length` (nothing is truncated). `prompt_ids` is the one way a prompt becomes ids, so
generation and serving see exactly the ids training saw. `collate` right-pads a batch.
"""

from __future__ import annotations

import torch

from cefrtune.errors import UserError
from cefrtune.examples import Example
from cefrtune.loss import IGNORE
from cefrtune.prompts import PromptStyle


class TooLongError(UserError, ValueError):
    """An example does not fit max_seq_length; never silently truncated."""


def tokenize_examples(
    examples: list[Example], tokenizer, style: PromptStyle, loss_on: str, max_seq_length: int | None
) -> list[dict]:
    """Token ids and labels per example: prompt tokens are IGNORE unless loss_on == "full".
    Prompt and response are tokenized apart and joined, so generation sees exactly the prompt
    ids training saw. Raises TooLongError naming every example over max_seq_length."""
    features, too_long = [], []
    for example in examples:
        prompt_ids, response_ids = encode(example, tokenizer, style)
        ids = prompt_ids + response_ids
        if loss_on == "full":
            labels = [IGNORE] + ids[1:]
        else:
            labels = [IGNORE] * len(prompt_ids) + response_ids
        if max_seq_length and len(ids) > max_seq_length:
            too_long.append(f"{example.id or example.origin}: {len(ids)} tokens")
        n_labels = sum(label != IGNORE for label in labels[1:])
        features.append({"input_ids": ids, "labels": labels, "n_labels": n_labels, "id": example.id})
    if too_long:
        raise TooLongError(
            f"{len(too_long)} example(s) longer than max_seq_length={max_seq_length} (nothing is truncated): "
            + "; ".join(too_long[:10])
            + f". Raise max_seq_length to at least {max(len(f['input_ids']) for f in features)} "
            "(`--set max_seq_length=N`) "
            "or shorten those examples; `cefrtune data stats` recommends a value."
        )
    return features


def encode(example: Example, tokenizer, style: PromptStyle) -> tuple[list[int], list[int]]:
    prompt = style.prompt(example.level, example.words, tokenizer)
    response = style.response(example.sentences, example.words, tokenizer)
    return prompt_ids(prompt, tokenizer), tokenizer(response, add_special_tokens=False)["input_ids"]


def prompt_ids(prompt: str, tokenizer) -> list[int]:
    """Prompt token ids with a BOS token first when the tokenizer has one and the text lacks it."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    return ids


def collate(features: list[dict], pad_id: int, device, multiple: int = 1) -> dict:
    """Right-padded input ids, attention mask and labels, the width rounded up to `multiple`."""
    width = -(-max(len(f["input_ids"]) for f in features) // multiple) * multiple
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        ids[row, :n] = torch.tensor(f["input_ids"])
        labels[row, :n] = torch.tensor(f["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}
