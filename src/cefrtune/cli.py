"""The `cefrtune` command: parses arguments and calls one function of a stage module.

    cefrtune data validate FILE... [--json] [--n 10]
    cefrtune data stats FILE... [--model gemma-3-270m]
    cefrtune data split FILE --out DIR [--eval-fraction 0.1] [--seed 42]
    cefrtune run [--config PRESET] [--output DIR] [--level A1|all|A1,B1] [--resume]
    cefrtune eval --model DIR --data FILE [--json]
    cefrtune generate --model DIR --level A1 --words "ev,su,..." [--input FILE --output FILE]
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cefrtune", description="CEFR word list -> level-appropriate Turkish sentences.")
    sub = parser.add_subparsers(title="commands")

    data = sub.add_parser("data", help="validate, describe and split list-format datasets").add_subparsers(title="data commands")
    p = data.add_parser("validate", help="check datasets; exit 1 on any error")
    p.add_argument("files", nargs="+")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--n", type=int, default=10, help="words (and sentences) per example")
    p.add_argument("--max-shown", type=int, default=200, help="problems printed at most (all are counted)")
    p.set_defaults(func=_data_validate)

    p = data.add_parser("stats", help="sizes and token lengths; recommends max_seq_length")
    p.add_argument("files", nargs="+")
    p.add_argument("--model", default="gemma-3-270m", help="tokenizer to count with (model id, preset name or folder)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_data_stats)

    p = data.add_parser("split", help="deterministic train/eval split (seed-style JSON files)")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="folder for training_data_<level>_list_format_{train,eval}.json")
    p.add_argument("--eval-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=_data_split)
    return parser


def _data_validate(args) -> int:
    from cefrtune.data import validate

    report = validate(args.files, n=args.n)
    for problem in report.problems[: args.max_shown]:
        print(problem, file=sys.stderr if args.json else sys.stdout)
    if len(report.problems) > args.max_shown:
        print(f"... {len(report.problems) - args.max_shown} more (see --max-shown)", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report.summary, ensure_ascii=False, indent=2))
    else:
        s = report.summary
        print(
            f"{s['examples']} examples, {s['sentences']} sentences, {s['distinct_target_words']} distinct target words: "
            f"{s['errors']} errors, {s['warnings']} warnings"
        )
    return 1 if report.errors else 0


def _data_stats(args) -> int:
    from cefrtune.data import stats

    result = stats(args.files, model=args.model)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else _format_stats(result))
    return 0


def _format_stats(result: dict) -> str:
    lines = [f"{k}: {v}" for k, v in result.items() if not isinstance(v, dict)]
    for k, v in result.items():
        if isinstance(v, dict):
            lines.append(f"{k}: " + ", ".join(f"{a}={b}" for a, b in v.items()))
    return "\n".join(lines)


def _data_split(args) -> int:
    from cefrtune.data import split

    train, evaluation = split(args.file, args.out, eval_fraction=args.eval_fraction, seed=args.seed)
    print(f"wrote {train}\nwrote {evaluation}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
