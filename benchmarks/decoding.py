"""Decoding: cefrtune's token loop (cefrtune.decode) against transformers' `model.generate`, side by side.

    python benchmarks/decoding.py                        # newest runs/a1-*/ run's merged model
    python benchmarks/decoding.py --run runs/a1-v5 --batch-sizes 32,64 --regenerations 192
    python benchmarks/decoding.py --limit-only --batch-sizes 1,8,32 [--profile]   # the step's limit alone

Both decode the same prompts with the same model (bf16), the same batching (shortest prompts
first), the same stop rules (end of turn, EOS, a row's line count) and the same sampler, in one
process, one after the other:

    lists          greedy: one 10-sentence answer per eval word list of the run (what `cefrtune
                   generate` and the run's raw generation do); the outputs must be identical
    regenerations  sampled: one sentence each, from the list so far (what checked mode does for a
                   failing sentence in a free round), `--regenerations` of them
    candidates     the same, a quarter of those prompts 4 times each (a steered round's candidates)

transformers' peer is `model.generate` with cefrtune's sampler as a logits processor and a
stopping criterion for the line counts: what cefrtune did before it had its own loop. Printed per
workload and batch size: seconds for each, the speed ratio, and whether greedy outputs match. The
machine is shared and noisy: compare the ratios, not the seconds.

Then the limit of one greedy step at each batch size B (cefrtune's loop, B different prompts, every
row writing): the measured time of a step against two lower bounds measured in the same run, the
bytes a step must read (the weights once, the LM head included, plus the KV cache at the mean
context) over the memory bandwidth of a large copy, and the step's FLOPs (2 per weight per row plus
attention) over a large bf16 matmul's rate; beside it the same step with the LM head reading its
weight as stored (`decode.packed_head` off), a lever timed on and off in one run. `--profile` prints
torch.profiler's top operators for a few steps at the first batch size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a cefrtune run folder (default: the newest runs/a1-*)")
    parser.add_argument("--batch-sizes", default="32", help="comma-separated")
    parser.add_argument("--regenerations", type=int, default=96, help="one-sentence regenerations to time")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--limit-only", action="store_true", help="only the step limit, not the two loops' comparison")
    parser.add_argument("--profile", action="store_true", help="profile a few greedy steps at the first batch size")
    parser.add_argument("--steps", type=int, default=24, help="greedy steps timed for the limit")
    args = parser.parse_args()

    from cefrtune.decode import decode_texts
    from cefrtune.examples import load_examples
    from cefrtune.features import prompt_ids
    from cefrtune.generation import _continuation_prompt, default_max_new_tokens, end_token_ids
    from cefrtune.models import load_generator
    from checked_generation import newest_run  # this folder's sibling script

    run = Path(args.run) if args.run else newest_run()
    if not (run / "merged").is_dir() or not list((run / "data").glob("*_eval.json")):
        sys.exit(f"{run}: not a finished cefrtune run (needs merged/ and data/*_eval.json)")
    train = load_examples(next((run / "data").glob("*_train.json")))
    evaluation = load_examples(next((run / "data").glob("*_eval.json")))
    model, tokenizer, style = load_generator(str(run / "merged"))
    stop_ids = end_token_ids(tokenizer, style)
    max_new = default_max_new_tokens(train + evaluation, tokenizer, style)
    lists = [prompt_ids(style.prompt(e.level, e.words, tokenizer), tokenizer) for e in evaluation]
    # Regeneration prompts: a reference list cut at sentence j, as checked mode writes them.
    regenerations = []
    for n in range(args.regenerations):
        example = (train + evaluation)[n % len(train + evaluation)]
        result = {"level": example.level, "words": example.words, "sentences": example.sentences}
        regenerations.append(_continuation_prompt(style, tokenizer, result, (n * 7) % len(example.words), n % 2 == 1))
    candidates = [p for p in regenerations[: len(regenerations) // 4] for _ in range(4)]
    sentence_budget = max(24, min(96, 2 * max_new // 10))
    print(
        f"{run}: {len(lists)} lists (max {max_new} new tokens), {len(regenerations)} regenerations "
        f"and {len(candidates)} candidates (max {sentence_budget} new tokens), {torch.get_num_threads()} threads",
        flush=True,
    )

    workloads = {
        "lists": dict(prompts=lists, max_new_tokens=max_new, lines=[10] * len(lists), sample=False),
        "regenerations": dict(
            prompts=regenerations, max_new_tokens=sentence_budget, lines=[1] * len(regenerations), sample=True
        ),
        "candidates": dict(
            prompts=candidates, max_new_tokens=sentence_budget, lines=[1] * len(candidates), sample=True
        ),
    }
    contenders = {
        "transformers": lambda w, b: generate_peer(model, tokenizer, stop_ids, batch_size=b, **w),
        "cefrtune": lambda w, b: decode_texts(
            model, tokenizer, stop_ids=stop_ids, batch_size=b, temperature=0.9, seed=7, **w
        ),
    }
    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")] if not args.limit_only else []:
        for name, workload in workloads.items():
            seconds, texts = {}, {}
            for contender, run_it in contenders.items():
                start = time.perf_counter()
                texts[contender] = run_it(workload, batch)
                seconds[contender] = time.perf_counter() - start
            same = sum(a == b for a, b in zip(texts["transformers"], texts["cefrtune"]))
            row = {
                "workload": name,
                "batch": batch,
                "prompts": len(workload["prompts"]),
                **{f"{k}_s": round(v, 2) for k, v in seconds.items()},
                "speedup": round(seconds["transformers"] / seconds["cefrtune"], 2),
                "identical": same,
            }
            rows.append(row)
            print(f"  {json.dumps(row)}", flush=True)
    print()
    print(
        f"{'workload':16}{'batch':>6}{'prompts':>8}{'transformers s':>16}{'cefrtune s':>12}"
        f"{'speed-up':>10}{'identical':>11}"
    )
    for r in rows:
        print(f"{r['workload']:16}{r['batch']:>6}{r['prompts']:>8}{r['transformers_s']:>16.1f}{r['cefrtune_s']:>12.1f}"
              f"{r['speedup']:>9.2f}x{r['identical']:>8}/{r['prompts']}")
    print(
        "(sampled rows differ by design: the two loops draw from the generator in a different order once rows finish)"
    )
    every_prompt = [prompt_ids(style.prompt(e.level, e.words, tokenizer), tokenizer) for e in train + evaluation]
    limits = step_limits(model, every_prompt, [int(b) for b in args.batch_sizes.split(",")], args.steps, args.profile)
    if args.json:
        Path(args.json).write_text(json.dumps({"run": str(run), "rows": rows, "limits": limits}, indent=1))


def step_limits(model, prompts: list[list[int]], batch_sizes: list[int], steps: int, profile: bool) -> list[dict]:
    """Measured greedy step time at each batch size against its memory and compute lower bounds."""
    from train_throughput import bf16_peak_gflops  # this folder's sibling script

    bandwidth = copy_bandwidth_gbs()
    peak = bf16_peak_gflops()
    print(f"\nstep limit: memory bandwidth {bandwidth:.1f} GB/s (copy of 1 GiB), bf16 matmul {peak:.0f} GFLOP/s "
          f"(2048x2048x2048), {torch.get_num_threads()} threads")
    rows = []
    for batch in batch_sizes:
        chosen = [prompts[i % len(prompts)] for i in range(batch)]
        seconds = greedy_step_seconds(model, chosen, steps)
        plain = greedy_step_seconds(model, chosen, steps, packed=False)
        context = sum(len(p) for p in chosen) / batch + steps / 2  # mean positions attended while stepping
        read, flops = step_bytes(model, batch, context), step_flops(model, batch, context)
        bound = max(read / bandwidth / 1e9, flops / peak / 1e9)
        rows.append({"batch": batch, "step_ms": round(1e3 * seconds, 2), "plain_head_ms": round(1e3 * plain, 2),
                     "bytes_gb": round(read / 1e9, 3),
                     "memory_bound_ms": round(1e3 * read / bandwidth / 1e9, 2), "gflops": round(flops / 1e9, 2),
                     "compute_bound_ms": round(1e3 * flops / peak / 1e9, 2), "ratio": round(seconds / bound, 2)})
    print(f"{'batch':>6}{'step ms':>10}{'plain head':>12}{'GB read':>9}{'memory-bound ms':>17}{'GFLOP':>8}"
          f"{'compute-bound ms':>18}{'step / bound':>14}")
    for r in rows:
        print(f"{r['batch']:>6}{r['step_ms']:>10.1f}{r['plain_head_ms']:>12.1f}{r['bytes_gb']:>9.3f}"
              f"{r['memory_bound_ms']:>17.1f}{r['gflops']:>8.1f}{r['compute_bound_ms']:>18.1f}{r['ratio']:>13.2f}x")
    print("(bound = the larger of the two; GB read = the weights once, LM head included, plus the KV cache;\n"
          " step = cefrtune's loop as shipped, the LM head's weight packed for oneDNN; plain head = without that)")
    if profile:
        profile_steps(model, [prompts[i % len(prompts)] for i in range(batch_sizes[0])])
    return rows


def copy_bandwidth_gbs(gib: float = 1.0) -> float:
    """Best rate of copying a large bf16 tensor, bytes read + written, in GB/s (best of 5)."""
    source = torch.ones(int(gib * 2**30) // 2, dtype=torch.bfloat16)
    target = torch.empty_like(source)
    best = 0.0
    for _ in range(6):
        start = time.perf_counter()
        target.copy_(source)
        best = max(best, 2 * source.numel() * 2 / (time.perf_counter() - start) / 1e9)
    return best


def greedy_step_seconds(model, prompts: list[list[int]], steps: int, packed: bool = True) -> float:
    """Seconds of one greedy step with every row writing: (prompt + `steps` tokens) - (prompt alone),
    over `steps`, each the best of two runs. `packed=False`: the LM head reads its weight as stored."""
    from cefrtune import decode

    def best(budget: int) -> float:
        times = []
        for _ in range(2):
            start = time.perf_counter()
            decode.decode_batch(model, prompts, budget, stop_ids=[], pad_id=0)
            times.append(time.perf_counter() - start)
        return min(times)

    decode.PACK_HEAD = packed
    try:
        return (best(1 + steps) - best(1)) / steps
    finally:
        decode.PACK_HEAD = True


def step_bytes(model, batch: int, context: float) -> float:
    """Bytes one decoding step must read: every weight once (an untied input embedding only reads
    the rows of its tokens, so it is left out) and each row's KV cache."""
    weights = {p.data_ptr(): p.numel() * p.element_size() for p in model.parameters()}
    embedding, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if embedding.data_ptr() != head.data_ptr():
        weights.pop(embedding.data_ptr())
    return sum(weights.values()) + batch * context * kv_bytes_per_position(model)


def step_flops(model, batch: int, context: float) -> float:
    """FLOPs of one step: 2 per matmul weight per row (LM head included), and attention's scores and
    weighted sum over the context (4 x heads x head_dim per position, each layer)."""
    config = model.config.get_text_config()
    embedding, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    matmul = {p.data_ptr(): p.numel() for n, p in model.named_parameters() if p.dim() == 2}
    if embedding.data_ptr() != head.data_ptr():
        matmul.pop(embedding.data_ptr())
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention = 4 * config.num_hidden_layers * config.num_attention_heads * head_dim * context
    return batch * (2 * sum(matmul.values()) + attention)


def kv_bytes_per_position(model) -> int:
    config = model.config.get_text_config()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * next(model.parameters()).element_size()


def profile_steps(model, prompts: list[list[int]], steps: int = 8) -> None:
    """torch.profiler's operators by self CPU time over `steps` greedy steps, the prompt left out: a
    forward hook advances the profiler's schedule, which skips the prompt's pass and one warm-up step."""
    from torch.profiler import ProfilerActivity, profile, schedule

    from cefrtune.decode import decode_batch

    decode_batch(model, prompts, 2, stop_ids=[], pad_id=0)  # warm-up
    with profile(activities=[ProfilerActivity.CPU], schedule=schedule(wait=1, warmup=1, active=steps)) as prof:
        hook = model.register_forward_hook(lambda *_: prof.step())
        try:
            decode_batch(model, prompts, 2 + steps, stop_ids=[], pad_id=0)
        finally:
            hook.remove()
    print(f"\nprofile: batch {len(prompts)}, {steps} greedy steps (the prompt's pass left out)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))


@torch.no_grad()
def generate_peer(model, tokenizer, stop_ids, prompts, batch_size, max_new_tokens, lines, sample):
    """The same decoding through `model.generate`: cefrtune's sampler as a logits processor that
    leaves one finite score, line counts as a stopping criterion."""
    from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

    from cefrtune.decode import SAMPLE_TOP_K, NewlineCounter, TopKTopPSampler

    class Sampler(LogitsProcessor):
        def __init__(self, seed):
            self.pick = TopKTopPSampler(SAMPLE_TOP_K, 0.95, 0.9, seed)

        def __call__(self, input_ids, scores):
            chosen = torch.full_like(scores, float("-inf"))
            return chosen.scatter_(-1, self.pick(scores)[:, None], 0.0)

    class LineLimit(StoppingCriteria):
        def __init__(self, limits):
            self.limits, self.breaks, self.count = limits, [0] * len(limits), NewlineCounter(tokenizer)

        def __call__(self, input_ids, scores, **kwargs):
            for row, token in enumerate(input_ids[:, -1].tolist()):
                self.breaks[row] += self.count(token)
            return torch.tensor([b >= limit for b, limit in zip(self.breaks, self.limits)])

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
            mask[row, width - len(prompts[i]) :] = 1
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            logits_processor=LogitsProcessorList([Sampler(7 + batch[0])] if sample else []),
            stopping_criteria=StoppingCriteriaList([LineLimit([lines[i] for i in batch])]),
            eos_token_id=stop_ids,
            pad_token_id=pad,
        )
        for row, i in enumerate(batch):
            outputs[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True)
    return outputs


if __name__ == "__main__":
    main()
