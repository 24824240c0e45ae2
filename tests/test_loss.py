"""The fused, selected-position loss equals the plain full-logits loss: values and gradients."""

import pytest
import torch
import torch.nn.functional as F

import tiny
from cefrtune.loss import IGNORE, CausalLMLoss, FrozenHeadCrossEntropy


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("softcap", [0.0, 30.0])
def test_fused_cross_entropy_matches_plain(softcap, compiled):
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64)
    targets = torch.randint(0, 50, (37,))
    loss = FrozenHeadCrossEntropy.apply(hidden, weight, targets, 8, softcap, compiled)
    (grad,) = torch.autograd.grad(loss, hidden)
    with torch.no_grad():  # evaluation: the loss alone
        loss_only = FrozenHeadCrossEntropy.apply(hidden, weight, targets, 8, softcap, compiled)
    logits = hidden @ weight.t()
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    plain = F.cross_entropy(logits, targets, reduction="sum")
    (plain_grad,) = torch.autograd.grad(plain, hidden)
    torch.testing.assert_close(loss.double(), plain, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(loss_only.double(), plain, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, plain_grad, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_selected_position_loss_matches_model_loss(arch):
    from peft import LoraConfig, get_peft_model

    make = tiny.llama if arch == "llama" else tiny.gemma3
    model = get_peft_model(
        make(120).double(), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    )
    torch.manual_seed(1)
    ids = torch.randint(0, 120, (3, 17))
    mask = torch.ones_like(ids)
    mask[2, 12:] = 0
    labels = ids.clone()
    labels[:, :6] = IGNORE
    labels[mask == 0] = IGNORE
    loss_sum, count = CausalLMLoss(model, chunk_size=5)(ids, mask, labels)
    (loss_sum / count).backward()
    fused = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    reference = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    reference.backward()
    # the reference loss upcasts logits to fp32, so compare at fp32 precision
    torch.testing.assert_close((loss_sum / count).float(), reference.float(), rtol=1e-6, atol=1e-6)
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(fused[name], param.grad, rtol=1e-4, atol=1e-7)


def test_evaluating_a_plain_model_takes_the_fused_path(monkeypatch):
    """A model loaded without LoRA has a head that requires grad; under no_grad its loss must
    still come from the fused chunks (never every logit at once), with the model's own value."""
    import cefrtune.loss as loss_module

    model = tiny.gemma3(120).double()
    assert model.get_output_embeddings().weight.requires_grad
    calls = []
    chunk = loss_module._chunk
    monkeypatch.setattr(loss_module, "_chunk", lambda *a: calls.append(1) or chunk(*a))
    torch.manual_seed(2)
    ids = torch.randint(0, 120, (2, 15))
    with torch.no_grad():
        loss_sum, count = CausalLMLoss(model, chunk_size=4)(ids, torch.ones_like(ids), ids.clone())
        reference = model(input_ids=ids, labels=ids).loss
    assert len(calls) == 7  # 2 x 14 predicted positions in chunks of 4
    torch.testing.assert_close((loss_sum / count).float(), reference.float(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("softcap", [0.0, 30.0])
def test_fused_cross_entropy_with_trained_rows_matches_plain(softcap, compiled):
    """Rows of the head replaced by trainable values (a trainable end-of-turn token): the loss,
    the hidden states' gradient and the values' gradient equal the full-logits computation."""
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64)
    targets = torch.randint(0, 50, (37,))
    targets[::4] = 7  # the trained row is a frequent target, as the end-of-turn token is
    rows = torch.tensor([7, 31])
    values = torch.randn(2, 16, dtype=torch.float64, requires_grad=True)
    loss = FrozenHeadCrossEntropy.apply(hidden, weight, targets, 8, softcap, compiled, rows, values)
    grad, grad_values = torch.autograd.grad(loss, (hidden, values))
    logits = hidden @ weight.index_copy(0, rows, values).t()
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    plain = F.cross_entropy(logits, targets, reduction="sum")
    plain_grad, plain_values = torch.autograd.grad(plain, (hidden, values))
    torch.testing.assert_close(loss.double(), plain, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, plain_grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad_values.double(), plain_values, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("arch", ["llama", "gemma3"], ids=["untied", "tied"])
def test_trainable_token_row_matches_model_loss(arch):
    """PEFT trains the end-of-turn row of the embedding and head (one shared row when tied): the
    fused loss sees the trained row in the head, and its gradients are the model's own."""
    from peft import LoraConfig, get_peft_model

    from cefrtune.train import trainable_token_indices

    base = (tiny.llama if arch == "llama" else tiny.gemma3)(120).double()
    rows = trainable_token_indices(base, [5])
    assert rows == ([5] if arch == "gemma3" else {"embed_tokens": [5], "lm_head": [5]})
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False, trainable_token_indices=rows
    )
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, delta in model.named_parameters():
            if "trainable_tokens_delta" in name:
                delta.add_(torch.randn_like(delta))  # the trained row differs from the base row
    torch.manual_seed(3)
    ids = torch.randint(0, 120, (2, 16))
    ids[:, 9] = 5
    labels = ids.clone()
    labels[:, :4] = IGNORE
    loss_sum, count = CausalLMLoss(model, chunk_size=6)(ids, torch.ones_like(ids), labels)
    (loss_sum / count).backward()
    fused = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    reference = model(input_ids=ids, labels=labels).loss
    reference.backward()
    torch.testing.assert_close((loss_sum / count).float(), reference.float(), rtol=1e-6, atol=1e-6)
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(fused[name], param.grad, rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        nll = CausalLMLoss(model).token_losses(ids, torch.ones_like(ids), labels)
    torch.testing.assert_close((nll.sum() / count).float(), reference.detach().float(), rtol=1e-6, atol=1e-6)
