"""Token-weighted causal-LM loss that never materialises the whole vocabulary's logits.

The embedded model has a 262k-token vocabulary, so its LM head dominates compute and memory.
`CausalLMLoss` runs the decoder, keeps only the positions whose next token counts (response
tokens by default), and feeds them to a fused linear + cross-entropy: chunk by chunk it computes
the logits, the loss and, for a frozen head, the gradient with respect to the hidden states, then
drops the logits. With `compiled=True` (training on CPU) each chunk's softmax passes run as one
compiled kernel instead of one pass per operation. The same module evaluates (baseline, adapter,
merged model) and trains, and it is what accelerate/DDP wraps, so every rank runs the same code.

    loss_sum, n_tokens = CausalLMLoss(model)(input_ids, attention_mask, labels)
    nll = CausalLMLoss(model).token_losses(input_ids, attention_mask, labels)  # per position, no grad
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100


class CausalLMLoss(nn.Module):
    """Sum of next-token NLL over positions whose label is not IGNORE, and their count."""

    def __init__(self, model: nn.Module, chunk_size: int = 256, compiled: bool = False):
        super().__init__()
        self.model = model
        self.chunk_size = chunk_size
        self.compiled = compiled

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor):
        selected, wanted, keep, head, softcap = self._select(input_ids, attention_mask, labels)
        weight, rows, values = head_rows(head)
        # The plain path only when the head itself trains (or has a bias): it materialises every
        # selected row's logits. Evaluation (no grad) always takes the fused path.
        head_trains = torch.is_grad_enabled() and weight.requires_grad
        if head_trains or getattr(head, "bias", None) is not None:
            loss_sum = F.cross_entropy(_plain_logits(head, selected, softcap), wanted, reduction="sum")
        else:
            loss_sum = FrozenHeadCrossEntropy.apply(selected, weight, wanted, self.chunk_size, softcap, self.compiled,
                                                    rows, values)
        return loss_sum, keep.sum()

    @torch.no_grad()
    def token_losses(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Next-token NLL at every position whose label counts, as a [batch, length - 1] fp32
        tensor (0 elsewhere): one decoder pass serves several label subsets (evaluation's
        full-text and response losses)."""
        selected, wanted, keep, head, softcap = self._select(input_ids, attention_mask, labels)
        accumulate = torch.promote_types(selected.dtype, torch.float32)
        weight, swapped, values = head_rows(head)
        if getattr(head, "bias", None) is not None:
            rows = F.cross_entropy(_plain_logits(head, selected, softcap), wanted, reduction="none")
        else:
            step = self.chunk_size
            rows = torch.cat([_chunk(selected[i : i + step], weight, wanted[i : i + step], softcap, accumulate, False,
                                     swapped, values)[0]
                              for i in range(0, len(wanted), step)] or [selected.new_zeros(0, dtype=accumulate)])
        losses = torch.zeros(keep.shape, dtype=accumulate, device=keep.device)
        losses[keep] = rows.to(accumulate)
        return losses

    def _select(self, input_ids, attention_mask, labels):
        """The decoder's hidden states at the positions whose next token counts, those tokens,
        the position mask, the LM head and its logit softcap (0.0 for none)."""
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        decoder, head = base.get_decoder(), base.get_output_embeddings()
        hidden = decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]
        targets = labels[:, 1:]
        keep = targets != IGNORE
        softcap = getattr(base.config, "final_logit_softcapping", None) or 0.0
        return hidden[:, :-1][keep], targets[keep], keep, head, softcap


def head_rows(head) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(weight, rows, values): the LM head's frozen weight and, when PEFT trains some of its rows
    (`trainable_token_indices` on a tied head, e.g. the end-of-turn token's), the indices of those
    rows and their current values, which replace the weight's rows in every logit."""
    layer = getattr(head, "token_adapter", None)
    if layer is None:
        return head.weight, None, None
    weight = layer.get_base_layer().weight
    names = [] if layer.merged or layer.disable_adapters else list(layer.active_adapters)
    if not names:
        return weight, None, None
    rows = torch.tensor([i for name in names for i in layer.token_indices[name]], device=weight.device)
    return weight, rows, torch.cat([layer.trainable_tokens_delta[name] for name in names])


def _plain_logits(head, selected, softcap):
    logits = head(selected).to(torch.promote_types(selected.dtype, torch.float32))
    return softcap * torch.tanh(logits / softcap) if softcap else logits


class FrozenHeadCrossEntropy(torch.autograd.Function):
    """sum_i CE(hidden_i @ weight.T, target_i) for a frozen `weight`, chunked over rows.

    The backward needs only d(loss)/d(hidden) = (softmax - onehot) @ weight, which is computed in
    the forward pass chunk by chunk, so no logits are kept for backward. The vocabulary-sized
    arrays are the cost here besides the two matmuls, so every pass over them counts: eagerly,
    each chunk's softmax is done in place on one fp32 buffer (max, subtract, exp, sum, scale);
    `compiled` runs `_softmax_terms` instead, which torch.compile fuses into a few passes over
    the bf16 logits (measured on a 2-core CPU at 256 x 262k: 0.93 against 1.32 ms a row).

    `rows`/`values` (optional) replace a few rows of `weight` by trainable `values` (a PEFT
    trainable token on a tied head); their gradient, (softmax - onehot)[:, rows].T @ hidden, is
    gathered in the same pass."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_size, softcap, compiled=False, rows=None, values=None):
        need_grad = hidden.requires_grad or (values is not None and values.requires_grad)
        accumulate = torch.promote_types(hidden.dtype, torch.float32)  # bf16 logits are summed in fp32
        total = hidden.new_zeros((), dtype=accumulate)
        grad = torch.empty_like(hidden) if need_grad else None
        grad_values = (
            torch.zeros(values.shape, dtype=accumulate, device=values.device)
            if need_grad and rows is not None
            else None
        )
        for start in range(0, hidden.shape[0], chunk_size):
            h = hidden[start : start + chunk_size]
            y = targets[start : start + chunk_size]
            if compiled:
                logits = h @ weight.t()
                if rows is not None:
                    logits[:, rows] = h @ values.to(weight.dtype).t()
                loss, grad_logits = _compiled_softmax_terms()(logits, y, softcap, need_grad)
                grad_chunk, grad_rows = (
                    _hidden_grad(grad_logits, h, weight, rows, values) if need_grad else (None, None)
                )
            else:
                loss, grad_chunk, grad_rows = _chunk(h, weight, y, softcap, accumulate, need_grad, rows, values)
                loss = loss.sum()
            total += loss
            if need_grad:
                grad[start : start + chunk_size] = grad_chunk
            if grad_rows is not None:
                grad_values += grad_rows
        ctx.save_for_backward(grad if need_grad else hidden.new_zeros(0),
                              grad_values if grad_values is not None else hidden.new_zeros(0))
        ctx.need_grad, ctx.has_rows = need_grad, grad_values is not None
        return total

    @staticmethod
    def backward(ctx, grad_output):
        grad, grad_values = ctx.saved_tensors
        if not ctx.need_grad:
            return None, None, None, None, None, None, None, None
        values_out = grad_values * grad_output.to(grad_values.dtype) if ctx.has_rows else None
        return grad * grad_output.to(grad.dtype), None, None, None, None, None, None, values_out


def _chunk(h, weight, y, softcap, accumulate, need_grad, rows=None, values=None):
    """Each row's NLL and, when `need_grad`, d(their sum)/d(h) and d(their sum)/d(values), in place
    on one fp32 buffer (`rows`/`values` replace rows of `weight`, see FrozenHeadCrossEntropy)."""
    index = torch.arange(len(y), device=y.device)
    logits = h @ weight.t()
    if rows is not None:
        logits[:, rows] = h @ values.to(weight.dtype).t()
    logits = logits.to(accumulate)
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
        capped = logits.clone() if need_grad else None
    target_logit = logits[index, y]
    peak = logits.amax(dim=-1, keepdim=True)
    probs = logits.sub_(peak).exp_()  # in place: `logits` is now exp(logits - max)
    norm = probs.sum(dim=-1, keepdim=True)
    loss = peak.squeeze(1) + norm.squeeze(1).log() - target_logit
    if not need_grad:
        return loss, None, None
    probs.div_(norm)
    probs[index, y] -= 1.0
    if softcap:
        probs.mul_(1.0 - (capped / softcap) ** 2)
    return (loss, *_hidden_grad(probs, h, weight, rows, values))


def _hidden_grad(grad_logits, h, weight, rows, values):
    """d/d(hidden) = grad_logits @ weight (with the replaced rows' values), and d/d(values)."""
    grad_hidden = grad_logits.to(weight.dtype) @ weight
    if rows is None:
        return grad_hidden.to(h.dtype), None
    picked = grad_logits[:, rows]
    grad_hidden += picked.to(weight.dtype) @ (values.to(weight.dtype) - weight[rows])
    return grad_hidden.to(h.dtype), picked.float().t() @ h.float()


def _softmax_terms(logits: torch.Tensor, y: torch.Tensor, softcap: float, need_grad: bool):
    """One chunk's summed NLL and, when `need_grad`, d(loss)/d(logits) = softmax - onehot in the
    logits' dtype, computed in at least fp32. Written out of place for torch.compile, which fuses
    it into a few passes over `logits`; `_chunk` is the in-place eager equivalent."""
    z = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if softcap:
        z = softcap * torch.tanh(z / softcap)
    peak = z.amax(dim=-1, keepdim=True)
    e = (z - peak).exp()
    norm = e.sum(dim=-1, keepdim=True)
    loss = (peak + norm.log() - z.gather(1, y[:, None])).sum()
    if not need_grad:
        return loss, None
    vocabulary = torch.arange(z.shape[1], device=z.device)
    grad = e / norm - (vocabulary == y[:, None]).to(z.dtype)
    if softcap:
        grad = grad * (1.0 - (z / softcap) ** 2)
    return loss, grad.to(logits.dtype)


@functools.cache
def _compiled_softmax_terms():
    return torch.compile(_softmax_terms, dynamic=True)
