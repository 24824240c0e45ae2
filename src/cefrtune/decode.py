"""The token loop under generation: batched, left-padded, KV-cached, shortest prompts first.

    texts = decode_texts(model, tokenizer, prompts, max_new_tokens=96, stop_ids=[1, 106], lines=[1, 1])

It does what `model.generate` does for cefrtune's two cases, greedy and the top-k/top-p sampler,
and nothing more: one forward pass per token over the rows still writing, logits for the last
position only, and a row that is done (a stop token, its line count, or the token budget) leaves
the batch and its cache at once instead of decoding padding to the end of the batch; the KV cache
writes each new position into room kept free instead of copying itself every step; a prompt asked
for several times in a batch (the candidates for one failing sentence) is read once and its cache
copied; on a CPU the LM head reads a copy of its weight packed for oneDNN (`packed_head`: the same logits,
a faster skinny matmul). Greedy output is token for token what `model.generate` writes (tests/test_decode.py;
in bf16 a near-tie can go either way, as the batch's shape changes the rounding);
`python benchmarks/decoding.py` times the two side by side.

A row stops at any of `stop_ids`, or once the tokens it wrote hold `lines[i]` line breaks (an
answer of n sentences is complete at the break after sentence n, whether or not the model ends
its turn there). Sampling is top-k (64) then top-p inside those k: sorting and sampling from the
full 262k-token distribution would cost more than the model's forward pass at each step.
"""

from __future__ import annotations

import contextlib
import functools
import inspect

import torch

from cefrtune import memory
from cefrtune.generation_settings import GENERATION

SAMPLE_TOP_K = 64
PACK_HEAD = True
"""Whether `packed_head` packs (benchmarks/decoding.py turns it off to time the plain head beside it)."""
SCORE_LOGITS = 2**27
"""`sentence_logprobs` scores at most this many logits at once (256 MB in bf16, twice that as fp32)."""


def decode_texts(model, tokenizer, prompts: list[list[int]], *args, **kwargs) -> list[str]:
    """The text each prompt's continuation decodes to (special tokens dropped), in prompt order; the
    arguments are `decode_tokens`'s. Prompts are decoded shortest first, `batch_size` different prompts at a
    time; a sampled batch is seeded with `seed` + the index of its first prompt, so the same call gives the
    same text. `max_new_tokens` is one budget for all prompts or one per prompt (the server's scheduler merges
    requests with different budgets). A `scores` list receives, in prompt order, the model's mean
    log-probability per written token (its own distribution, before temperature and top-k/top-p): how fluent
    the model finds what it wrote."""
    tokens = decode_tokens(model, tokenizer, prompts, *args, **kwargs)
    return [tokenizer.decode(row, skip_special_tokens=True) for row in tokens]


def decode_tokens(
    model,
    tokenizer,
    prompts: list[list[int]],
    max_new_tokens: int | list[int],
    stop_ids: list[int],
    batch_size: int = GENERATION.batch_size,
    lines: list[int] | None = None,
    sample: bool = False,
    temperature: float = GENERATION.temperature,
    top_p: float = GENERATION.top_p,
    seed: int = GENERATION.seed,
    progress: bool = False,
    desc: str = "generate",
    scores: list[float] | None = None,
) -> list[list[int]]:
    """`decode_texts`, before decoding: the token ids each prompt's row wrote, its stop token included."""
    from tqdm.auto import tqdm

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    breaks_in = NewlineCounter(tokenizer)
    batches = _batches(prompts, batch_size)
    outputs: list[list[int]] = [[] for _ in prompts]
    fluency: list[float] = [0.0] * len(prompts)
    model.eval()
    with packed_head(model):  # packed once for all the batches
        for batch in tqdm(batches, desc=desc, unit="batch", disable=not progress):
            sampler = TopKTopPSampler(SAMPLE_TOP_K, top_p, temperature, seed + batch[0]) if sample else None
            limits = [lines[i] for i in batch] if lines else None
            budget = [max_new_tokens[i] for i in batch] if isinstance(max_new_tokens, list) else max_new_tokens
            logprobs: list[float] | None = [] if scores is not None else None
            tokens = decode_batch(model, [prompts[i] for i in batch], budget, stop_ids, pad, limits, breaks_in,
                                  sampler, logprobs)
            for row, (i, written) in enumerate(zip(batch, tokens)):
                outputs[i] = written
                if logprobs is not None:
                    fluency[i] = logprobs[row] / max(len(written), 1)
            memory.trim_if_above()
    if scores is not None:
        scores[:] = fluency
    return outputs


@torch.no_grad()
def sentence_logprobs(model, tokenizer, texts: list[str], batch_size: int = GENERATION.batch_size) -> list[float]:
    """How probable the model finds each text on its own, as a whole: the summed log-probability of its
    tokens after BOS. Unlike the mean per token that `scores` gives, it favours the plain sentence over the
    long or far-fetched one; checked generation ranks candidates by it (docs/rating.md: it separates
    sentences a teacher would use from the rest far better than the mean does)."""
    bos = tokenizer.bos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    rows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        rows.append(([bos] if bos is not None else []) + ids)
    device = next(model.parameters()).device
    totals = [0.0] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(rows[i]))
    vocab = model.get_output_embeddings().weight.shape[0]
    model.eval()
    start = 0
    while start < len(order):
        # at most `batch_size` rows, and logits of at most SCORE_LOGITS values (a 262k vocabulary makes them large);
        # rows come shortest first, so a chunk's last row is its widest
        widest = len(rows[order[min(start + batch_size, len(order)) - 1]])
        chunk = order[start : start + max(1, min(batch_size, SCORE_LOGITS // (widest * vocab)))]
        start += len(chunk)
        width = len(rows[chunk[-1]])
        ids = torch.tensor([rows[i] + [pad] * (width - len(rows[i])) for i in chunk], device=device)
        mask = torch.tensor([[1] * len(rows[i]) + [0] * (width - len(rows[i])) for i in chunk], device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        picked = logits.gather(-1, ids[:, 1:, None])[..., 0] - torch.logsumexp(logits, dim=-1)
        for i, total in zip(chunk, (picked * mask[:, 1:]).sum(1).tolist()):
            totals[i] = total
    return totals


def _batches(prompts: list[list[int]], batch_size: int) -> list[list[int]]:
    """Prompt indices, shortest prompts first, `batch_size` different prompts a batch: copies of a
    prompt (several candidates for one sentence) ride along, as they cost one prompt's reading."""
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), prompts[i]))
    batches: list[list[int]] = []
    distinct = 0
    for position, i in enumerate(order):
        new_prompt = position == 0 or prompts[i] != prompts[order[position - 1]]
        if not batches or (new_prompt and distinct == batch_size):
            batches.append([])
            distinct = 0
        batches[-1].append(i)
        distinct += new_prompt
    return batches


@torch.no_grad()
def decode_batch(model, prompts: list[list[int]], max_new_tokens: int | list[int], stop_ids: list[int], pad_id: int,
                 limits: list[int] | None = None, breaks_in=None, sampler=None,
                 logprobs: list[float] | None = None) -> list[list[int]]:
    """The tokens each prompt's row writes, its stop token included. `breaks_in(token)` counts
    the line breaks a token carries (needed with `limits`); `max_new_tokens` may be one budget per row.
    A `logprobs` list receives each row's summed log-probability of its tokens under the model."""
    with packed_head(model):
        return _decode_batch(model, prompts, max_new_tokens, stop_ids, pad_id, limits, breaks_in, sampler, logprobs)


def _decode_batch(model, prompts, max_new_tokens, stop_ids, pad_id, limits, breaks_in, sampler, logprobs):
    """`decode_batch`'s loop, with the head already packed."""
    budgets = max_new_tokens if isinstance(max_new_tokens, list) else None
    max_new_tokens = max(budgets) if budgets else max_new_tokens
    device = next(model.parameters()).device
    distinct: dict[tuple[int, ...], int] = {}
    prompt_of_row = [distinct.setdefault(tuple(p), len(distinct)) for p in prompts]
    width = max(len(p) for p in distinct)
    ids = torch.full((len(distinct), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(distinct), width), dtype=torch.long)
    for row, prompt in enumerate(distinct):  # left padding
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache_arg, keeps_logits = _forward_arguments(model)
    cache = _new_cache(model)
    stop = set(stop_ids)
    written: list[list[int]] = [[] for _ in prompts]
    breaks = [0] * len(prompts)
    summed = [0.0] * len(prompts)
    live = list(range(len(prompts)))  # the prompt each batch row belongs to
    inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
    for step in range(max_new_tokens):
        logits = model(
            **inputs, **{cache_arg: cache}, use_cache=True, **({"logits_to_keep": 1} if keeps_logits else {})
        ).logits
        scores = logits[:, -1]
        if step == 0 and len(distinct) < len(prompts):  # a prompt asked for several times is read once, then copied
            index = torch.tensor(prompt_of_row, device=device)
            cache.batch_select_indices(index)
            scores, mask, inputs["position_ids"] = scores[index], mask[index], inputs["position_ids"][index]
        tokens = (
            sampler(scores) if sampler is not None else scores.max(dim=-1).indices
        )  # the first best, as argmax; 4x faster on bf16
        if logprobs is not None:
            chosen = scores.float().log_softmax(dim=-1).gather(-1, tokens[:, None]).squeeze(-1).tolist()
            for prompt, value in zip(live, chosen):
                summed[prompt] += value
        keep = []
        for row, (prompt, token) in enumerate(zip(live, tokens.tolist())):
            written[prompt].append(token)
            if limits is not None:
                breaks[prompt] += breaks_in(token)
            if token not in stop and not (limits is not None and breaks[prompt] >= limits[prompt]) \
                    and not (budgets is not None and len(written[prompt]) >= budgets[prompt]):
                keep.append(row)
        if not keep or step == max_new_tokens - 1:
            break
        last = inputs["position_ids"][:, -1:]
        if len(keep) < len(live):  # done rows leave the batch and the cache
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, tokens, last = mask[index], tokens[index], last[index]
            live = [live[row] for row in keep]
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
        inputs = {"input_ids": tokens[:, None], "attention_mask": mask, "position_ids": last + 1}
    if logprobs is not None:
        logprobs[:] = summed
    return written


class NewlineCounter:
    """How many line breaks a token's text holds, decoded once per token id."""

    def __init__(self, tokenizer):
        self.tokenizer, self.known = tokenizer, {}

    def __call__(self, token: int) -> int:
        if token not in self.known:
            self.known[token] = self.tokenizer.decode([token]).count("\n")
        return self.known[token]


class TopKTopPSampler:
    """Samples the next token of each row from its top-k tokens, cut to top-p mass, at a
    temperature. Seeded by its own generator: the same seed gives the same tokens."""

    def __init__(self, k: int, p: float, temperature: float, seed: int):
        self.k, self.p, self.temperature = k, p, temperature
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        top, index = scores.float().topk(min(self.k, scores.shape[-1]), dim=-1)
        probs = (top / self.temperature).softmax(dim=-1)
        probs = probs.masked_fill(probs.cumsum(dim=-1) - probs > self.p, 0.0)  # keeps at least the best
        choice = torch.multinomial(probs.cpu(), 1, generator=self.generator).to(index.device)
        return index.gather(-1, choice).squeeze(-1)


@contextlib.contextmanager
def packed_head(model):
    """For the time of the block the model's LM head reads a copy of its weight that oneDNN has reordered
    into its blocked layout, when the head is a bias-free bf16 `nn.Linear` on a CPU with bf16 support
    (otherwise nothing changes). The logits are the same, bit for bit; the head's skinny matmul (batch x
    640 by 640 x 262,144 for Gemma 3) takes 1.4x less time at batch 32 and 2x less at batch 1-8
    (docs/performance.md, Decoding). The copy (335 MB for Gemma 3's head, about 0.1 s to make) lives only
    as long as the block: a weight changed in place (a merge writes the trained rows into the head)
    cannot be read stale. Blocks nest; the inner one changes nothing."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if not PACK_HEAD or isinstance(head, _PackedHead) or not _packable(head):
        yield
        return
    packed = torch.ops.mkldnn._reorder_linear_weight(head.weight.detach(), GENERATION.batch_size)
    base.set_output_embeddings(_PackedHead(head, packed))
    try:
        yield
    finally:
        base.set_output_embeddings(head)


def _packable(head) -> bool:
    return (
        type(head) is torch.nn.Linear and head.bias is None and head.weight.dtype == torch.bfloat16
        and head.weight.device.type == "cpu" and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight") and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


class _PackedHead(torch.nn.Module):
    """A stand-in for a bias-free linear head whose weight is also kept reordered (`packed_head`)."""

    def __init__(self, linear: torch.nn.Linear, packed: torch.Tensor):
        super().__init__()
        self.__dict__["linear"] = linear  # not a submodule: the model's parameters keep their names
        self.weight, self.packed = linear.weight, packed

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if hidden.dtype != torch.bfloat16 or torch.is_grad_enabled():
            return self.linear(hidden)
        return torch.ops.mkldnn._linear_pointwise(hidden, self.packed, None, "none", [], "")


def _forward_arguments(model) -> tuple[str, bool]:
    """The name the model's forward gives its KV cache, and whether it can keep only the last logits."""
    parameters = inspect.signature(model.forward).parameters
    return ("cache" if "cache" in parameters else "past_key_values"), "logits_to_keep" in parameters


def _new_cache(model):
    """A KV cache whose layers write each new position into room kept free (`_GrowingLayer`);
    transformers' own dynamic cache where its layout is not the one this was written against."""
    from transformers import DynamicCache

    cache = DynamicCache()
    if getattr(cache, "layer_class_to_replicate", None) is None or getattr(cache, "layers", None) != []:
        return cache
    cache.layer_class_to_replicate = _growing_layer_class()
    return cache


@functools.cache
def _growing_layer_class():
    """transformers' DynamicLayer concatenates every step: a copy of the whole cache per token,
    which at batch 32 costs about a fifth of a step. This one keeps spare positions and writes
    into them; attention reads a view of the filled part."""
    from transformers.cache_utils import DynamicLayer

    class _GrowingLayer(DynamicLayer):
        ROOM = 128  # positions added whenever the buffer is full

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
                self.filled, self.key_buffer, self.value_buffer = 0, key_states[..., :0, :], value_states[..., :0, :]
            end = self.filled + key_states.shape[-2]
            if end > self.key_buffer.shape[-2]:
                self.key_buffer = self._grown(self.key_buffer, end)
                self.value_buffer = self._grown(self.value_buffer, end)
            self.key_buffer[..., self.filled : end, :] = key_states
            self.value_buffer[..., self.filled : end, :] = value_states
            self.filled = end
            self.keys, self.values = self.key_buffer[..., :end, :], self.value_buffer[..., :end, :]
            return self.keys, self.values

        def _grown(self, buffer, needed):
            shape = list(buffer.shape)
            shape[-2] = needed + self.ROOM
            grown = buffer.new_empty(shape)
            grown[..., : self.filled, :] = buffer[..., : self.filled, :]
            return grown

        def batch_select_indices(self, indices):
            if self.is_initialized and self.filled:
                self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
                self.keys, self.values = (
                    self.key_buffer[..., : self.filled, :],
                    self.value_buffer[..., : self.filled, :],
                )

    return _GrowingLayer
