"""The decoding loop: greedy output is what transformers' generate writes, on tiny Llama and Gemma 3
models; rows stop at their own stop token or line count; a batch gives each row what it would get
alone; a prompt asked for several times is read once."""

import pytest
import torch

import tiny
from cefrtune.decode import (
    NewlineCounter,
    TopKTopPSampler,
    _batches,
    decode_batch,
    decode_texts,
    packed_head,
    sentence_logprobs,
)

PAD = 0


def prompts(vocab: int, lengths, seed: int = 1) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(5, vocab, (n,), generator=generator).tolist() for n in lengths]


def generate_reference(model, rows, max_new_tokens, stop_ids):
    """transformers' greedy generate over the same left-padded batch, cut after each row's stop token."""
    width = max(map(len, rows))
    ids = torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                         eos_token_id=stop_ids, pad_token_id=PAD)[:, width:].tolist()
    cut = []
    for row in out:
        ends = [i for i, t in enumerate(row) if t in stop_ids]
        cut.append(row[: ends[0] + 1] if ends else row)
    return cut


@pytest.mark.parametrize("build", [tiny.llama, lambda vocab: tiny.gemma3(vocab, tied=False)], ids=["llama", "gemma3"])
def test_greedy_matches_transformers_generate(build):
    model = build(300).eval()
    rows = prompts(300, [5, 23, 40, 17])  # 40 prompt + 40 new tokens crosses Gemma's 64-token sliding window
    free = decode_batch(model, rows, 40, [], PAD)
    never = min(set(range(300)) - {t for row in free for t in row})
    assert free == generate_reference(model, rows, 40, [never])
    stop_ids = sorted({free[1][9], free[2][4]})  # rows 1 and 2 stop early, at the latest there
    stopped = decode_batch(model, rows, 40, stop_ids, PAD)
    assert stopped == generate_reference(model, rows, 40, stop_ids)
    assert len(stopped[1]) <= 10 and len(stopped[2]) <= 5 and stopped[1][-1] in stop_ids


@pytest.mark.skipif(not torch.ops.mkldnn._is_mkldnn_bf16_supported(), reason="this CPU has no oneDNN bf16 path")
@pytest.mark.parametrize("tied", [True, False])
def test_a_bf16_head_reads_its_packed_weight_and_writes_the_same_tokens(tied, monkeypatch):
    model = tiny.gemma3(300, tied=tied).to(torch.bfloat16).eval()
    head = model.get_output_embeddings()
    names = dict(model.named_parameters()).keys()
    with packed_head(model):
        assert type(model.get_output_embeddings()).__name__ == "_PackedHead"
        assert dict(model.named_parameters()).keys() == names  # the stand-in adds and renames nothing
        with packed_head(model):  # nested: nothing changes
            packed_module = model.get_output_embeddings()
        assert model.get_output_embeddings() is packed_module
    assert model.get_output_embeddings() is head  # put back after the block
    reads = []
    linear = torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *a: reads.append(1) or linear(*a))
    rows = prompts(300, [5, 23, 40, 17])
    packed = decode_batch(model, rows, 40, [], PAD)
    assert len(reads) >= 40 and model.get_output_embeddings() is head
    monkeypatch.setattr("cefrtune.decode._packable", lambda head: False)
    assert decode_batch(model, rows, 40, [], PAD) == packed  # the plain head writes the same tokens
    monkeypatch.undo()
    if not tied:  # (a tied tiny model repeats its last token whatever its head)
        head.weight.data[:, :] = head.weight.data.flip(0)  # changed in place: packed again, never read stale
        assert decode_batch(model, rows, 40, [], PAD) != packed


def test_each_row_gets_what_it_would_alone():
    model = tiny.gemma3(300, tied=False).eval()
    rows = prompts(300, [3, 30, 12, 30, 8], seed=2)
    together = decode_batch(model, rows, 30, [7], PAD)
    assert together == [decode_batch(model, [r], 30, [7], PAD)[0] for r in rows]


def test_rows_stop_after_their_own_line_count():
    model = tiny.llama(300).eval()
    breaks_in = lambda token: 1 if token % 3 == 0 else 0  # noqa: E731 - a third of the vocabulary "ends a line"
    rows = prompts(300, [6, 9, 4])
    limits = [1, 3, 2]
    out = decode_batch(model, rows, 60, [], PAD, limits, breaks_in)
    for row, limit in zip(out, limits):
        assert sum(map(breaks_in, row)) == limit and breaks_in(row[-1]) == 1  # stopped right at the limit-th break


def test_repeated_prompts_are_read_once_and_sampled_apart():
    model = tiny.llama(300).eval()
    rows = prompts(300, [9, 14])
    calls = []
    model.register_forward_pre_hook(
        lambda module, args, kwargs: calls.append(kwargs["input_ids"].shape), with_kwargs=True
    )
    out = decode_batch(model, [rows[0]] * 3 + [rows[1]], 12, [], PAD, sampler=TopKTopPSampler(50, 1.0, 2.0, seed=0))
    assert calls[0][0] == 2  # two different prompts read, not four
    assert len({tuple(r) for r in out[:3]}) > 1  # copies draw their own tokens
    greedy = decode_batch(model, [rows[0]] * 2, 12, [], PAD)
    assert greedy[0] == greedy[1] == decode_batch(model, [rows[0]], 12, [], PAD)[0]


def test_batches_count_different_prompts():
    a, b, c = [1, 2], [3, 4], [5]
    batches = _batches([a, a, b, a, c, b, b], batch_size=2)
    assert [sorted(x) for x in batches] == [[0, 1, 3, 4], [2, 5, 6]]  # c, then a (shortest first), then b
    assert sorted(i for x in batches for i in x) == list(range(7))


def test_decode_texts_keeps_prompt_order_and_is_seeded(tok):
    model = tiny.llama(len(tok)).eval()
    rows = [tok("Evde kimse yok")["input_ids"], tok("Kedi")["input_ids"], tok("Bir bardak su içtim")["input_ids"]]
    greedy = decode_texts(model, tok, rows, 8, [tok.eos_token_id], batch_size=2)
    assert greedy[1] == decode_texts(model, tok, [rows[1]], 8, [tok.eos_token_id])[0]
    sampled = decode_texts(model, tok, rows, 8, [], batch_size=2, sample=True, seed=5)
    assert sampled == decode_texts(model, tok, rows, 8, [], batch_size=2, sample=True, seed=5)


def test_sampler_picks_one_token_from_the_top_k():
    scores = torch.randn(4, 1000)
    chosen = TopKTopPSampler(k=5, p=0.95, temperature=1.0, seed=3)(scores)
    top5 = scores.topk(5, dim=-1).indices
    assert chosen.shape == (4,) and all(c in row for c, row in zip(chosen.tolist(), top5.tolist()))
    assert torch.equal(chosen, TopKTopPSampler(k=5, p=0.95, temperature=1.0, seed=3)(scores))  # seeded
    nucleus = TopKTopPSampler(k=5, p=1e-6, temperature=1.0, seed=3)(scores)
    assert torch.equal(nucleus, scores.argmax(dim=-1))  # a tiny top-p keeps only the best token


def test_newline_counter_counts_breaks_inside_tokens():
    pieces = ["1.", " Ev", ".\n", "\n\n", "x"]

    class Pieces:  # decode() is all the counter needs from a tokenizer
        def decode(self, ids):
            return "".join(pieces[i] for i in ids)

    count = NewlineCounter(Pieces())
    assert [count(i) for i in range(5)] == [0, 0, 1, 2, 0]


def test_fluency_scores_are_the_models_log_probabilities():
    """The summed log-probability decode_batch reports equals a full forward pass over prompt + answer,
    for every row of a batch (rows of different lengths, left-padded, some sampled)."""
    model = tiny.llama(300).eval()
    rows = prompts(300, [4, 11, 7], seed=3)
    summed: list[float] = []
    out = decode_batch(model, rows, 12, [9], PAD, sampler=TopKTopPSampler(20, 0.9, 1.0, seed=5), logprobs=summed)
    for prompt, written, total in zip(rows, out, summed):
        ids = torch.tensor([prompt + written])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt) - 1 : -1].float().log_softmax(-1)
        expected = logits.gather(-1, torch.tensor(written)[:, None]).sum().item()
        assert total == pytest.approx(expected, abs=1e-3)


def test_per_row_budgets_give_each_row_what_its_own_budget_gives():
    model = tiny.llama(300).eval()
    rows = prompts(300, [6, 11, 9])
    merged = decode_batch(model, rows, [3, 12, 7], [], PAD)
    assert [len(r) for r in merged] == [3, 12, 7]
    assert merged == [decode_batch(model, [row], budget, [], PAD)[0] for row, budget in zip(rows, [3, 12, 7])]


@pytest.mark.parametrize("logits", [2**27, 1], ids=["batched", "one-row-a-forward"])
def test_sentence_logprobs_score_each_text_alone_after_bos(logits, monkeypatch):
    """Batched and padded, in any order, each text gets the summed log-probability a forward pass over
    BOS + its tokens alone gives (also when the logits budget allows one row at a time)."""
    monkeypatch.setattr("cefrtune.decode.SCORE_LOGITS", logits)
    tok = tiny.tokenizer()
    model = tiny.llama(len(tok)).eval()
    texts = ["Evde kimse yok.", "Bir bardak su içtim.", "Kitap",
             "Yarın okula gidiyorum ve kitabı masada bıraktım."]
    got = sentence_logprobs(model, tok, texts, batch_size=3)
    for text, total in zip(texts, got):
        ids = [tok.bos_token_id] + tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)
        assert total == pytest.approx(logits.gather(-1, torch.tensor(ids[1:])[:, None]).sum().item(), abs=1e-3)
    assert got[2] > got[3]  # a longer text costs more
