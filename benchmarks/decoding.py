"""Decoding: cefrtune's token loop (cefrtune.decode) against transformers' `model.generate`, side by side.

    python benchmarks/decoding.py                        # newest runs/a1-*/ run's merged model
    python benchmarks/decoding.py --run runs/a1-v5 --batch-sizes 32,64 --regenerations 192

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
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
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
    if args.json:
        Path(args.json).write_text(json.dumps({"run": str(run), "rows": rows}, indent=1))


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
