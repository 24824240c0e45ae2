"""Model loading and casting: a cast keeps what `from_pretrained(dtype=...)` keeps in fp32."""

import pytest
import torch

import tiny
from cefrtune import models


@pytest.mark.parametrize("build", [tiny.llama, lambda vocab: tiny.gemma3(vocab, tied=False)], ids=["llama", "gemma3"])
def test_cast_keeps_rotary_frequencies_fp32_like_loading(build, tok, tmp_path):
    folder = tiny.save(build(len(tok)), tok, tmp_path / "model")
    cast = models.to_dtype(models.load(folder, dtype=torch.float32)[0], torch.bfloat16)
    loaded = models.load(folder, dtype=torch.bfloat16)[0]
    frequencies = {n: b for n, b in cast.named_buffers() if n.endswith("inv_freq")}
    assert frequencies and all(b.dtype == torch.float32 for b in frequencies.values())
    assert all(p.dtype == torch.bfloat16 for p in cast.parameters())
    ids = torch.randint(5, len(tok), (2, 200))  # long enough for rounded frequencies to move the logits
    with torch.no_grad():
        assert torch.equal(cast(ids).logits, loaded(ids).logits)
        plain = build(len(tok))
        plain.load_state_dict(loaded.state_dict())
        rounded = plain.to(torch.bfloat16)(ids).logits  # what a plain .to() gives
    assert not torch.equal(rounded, loaded(ids).logits)
