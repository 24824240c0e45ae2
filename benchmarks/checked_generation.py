"""Checked generation: which regeneration schedule makes a passing sentence likelier, and what it costs.

    python benchmarks/checked_generation.py                      # newest runs/a1-*/ run's merged model
    python benchmarks/checked_generation.py --run runs/a1-default --attempts 4
    python benchmarks/checked_generation.py --run runs/a1-words --schedules steer-from-2
    python benchmarks/checked_generation.py --schedules steer-from-2 --candidates 1,2,4 --free-candidates same

On the run's eval word lists (its own split, so nothing was trained on them), in one process with
the same seed, each schedule regenerates the failing sentences of the same first answers:

    no-steering    every round samples freely
    steer-last     free rounds, the word's stem written on the last round only
    steer-from-2   one free round, then steered rounds (cefrtune's default)
    steer-always   every round steered

Each schedule runs once per `--candidates` value: the sentences sampled for every failing sentence
in a steered round (`--free-candidates`: in a free round; cefrtune's default is 4 steered, 1 free).
Printed per run: share of sentences passing every check before and after, sentences still
flagged, mean rounds and samples (every sentence generated, the first answer included) a
sentence, sentences/s. The decoding loop itself is timed against transformers' in
benchmarks/decoding.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEDULES = {
    "no-steering": lambda a: None,
    "steer-last": lambda a: a - 1,
    "steer-from-2": lambda a: 1,
    "steer-always": lambda a: 0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a cefrtune run folder (default: the newest runs/a1-*)")
    parser.add_argument("--attempts", type=int, default=4)
    parser.add_argument("--schedules", default=",".join(SCHEDULES), help=f"comma-separated, of {', '.join(SCHEDULES)}")
    parser.add_argument(
        "--candidates", default="1", help="comma-separated: sentences sampled per failing sentence a round"
    )
    parser.add_argument("--free-candidates", default="1",
                        help="candidates in the unsteered rounds: a number (default 1, cefrtune's default) or 'same'")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    from cefrtune.examples import load_examples
    from cefrtune.generation import Request, default_max_new_tokens, generate_checked
    from cefrtune.models import load_generator

    run = Path(args.run) if args.run else newest_run()
    schedules = [s.strip() for s in args.schedules.split(",")]
    unknown = [s for s in schedules if s not in SCHEDULES]
    if unknown:
        sys.exit(f"unknown schedule(s) {', '.join(unknown)}; use {', '.join(SCHEDULES)}")
    train = load_examples(next((run / "data").glob("*_train.json")))
    evaluation = load_examples(next((run / "data").glob("*_eval.json")))
    model, tokenizer, style = load_generator(str(run / "merged"))
    max_new = default_max_new_tokens(train + evaluation, tokenizer, style)
    requests = [Request(e.level, e.words) for e in evaluation]
    train_sentences = [s for e in train for s in e.sentences]
    print(
        f"{run}: {len(requests)} eval word lists, {sum(len(r.words) for r in requests)} sentences, "
        f"{args.attempts} attempts, prompt style {style.kind}{' (word named first)' if style.name_words else ''}",
        flush=True,
    )

    rows = {}
    for name in schedules:
        for k in [int(c) for c in args.candidates.split(",")]:
            _, summary = generate_checked(
                model,
                tokenizer,
                style,
                requests,
                args.attempts,
                train_sentences,
                args.batch_size,
                max_new,
                seed=args.seed,
                free_attempts=SCHEDULES[name](args.attempts),
                candidates=k,
                free_candidates=None if args.free_candidates == "same" else int(args.free_candidates),
            )
            label = f"{name} x{k}" + (f" (free x{args.free_candidates})" if args.free_candidates != "same" else "")
            rows[label] = summary
            print(f"  {label}: {json.dumps(summary)}", flush=True)
    print()
    print(
        f"{'schedule x candidates':30}{'pass before':>12}{'pass after':>12}{'flagged':>9}"
        f"{'rounds':>8}{'samples':>9}{'sent/s':>8}"
    )
    for name, s in rows.items():
        print(f"{name:30}{s['pass_rate_before']:>12.3f}{s['pass_rate']:>12.3f}{s['flagged']:>9}"
              f"{s['mean_attempts']:>8.2f}{s['mean_samples']:>9.2f}{s['sentences_per_s']:>8.2f}")

    if args.json:
        Path(args.json).write_text(json.dumps({"run": str(run), "schedules": rows}, indent=1))


def newest_run() -> Path:
    runs = sorted((p for p in (ROOT / "runs").glob("a1-*") if (p / "merged").is_dir()), key=lambda p: p.stat().st_mtime)
    if not runs:
        sys.exit("no finished run under runs/ (run `cefrtune run` first, or pass --run)")
    return runs[-1]


if __name__ == "__main__":
    main()
