"""The `cefrtune` command: parses arguments and calls one function of a stage module.

    cefrtune data validate [FILE...] [--json] [--n 10]
    cefrtune data stats FILE... [--model gemma-3-270m]
    cefrtune data split FILE --out DIR [--eval-fraction 0.1] [--seed 42]
    cefrtune run [--config PRESET] [--output DIR] [--level A1|all|A1,B1] [--resume]
    cefrtune config                               # presets and every run setting with its default
    cefrtune eval --model DIR --data FILE [--json]
    cefrtune generate --model DIR --level A1 --words "ev,su,..." [--input FILE --output FILE]
    cefrtune rate sheet --source NAME=PATH [--source ...] --out DIR [--seed 0] [--per-source N] [--force]
    cefrtune rate score SHEET... --key DIR/key.csv [--rater NAME ...] [--json] [--out ratings.jsonl]
    cefrtune serve [--model DIR] [--host 127.0.0.1] [--port 8000] [--api-key KEY]
    cefrtune export RUN --gguf [--quant q8_0|f16|q4_k_m] [--ollama] [--output DIR]
"""

from __future__ import annotations

import argparse
import json
import sys

from cefrtune.config import SERVE_API_KEY_ENV, SERVE_HOST, SERVE_PORT
from cefrtune.errors import UserError
from cefrtune.generation_settings import GENERATION

REPORT_HINT = ("cefrtune: unexpected error (a bug in cefrtune, not in what you gave it). Please report it with the "
               "command you ran, the traceback above and `pip show cefrtune torch transformers`.")


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
    except UserError as err:  # a mistake the user can fix: the message says what, where and what to do
        print(f"cefrtune: {err}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError, RecursionError) as err:  # a path, file or folder the user gave
        print(f"cefrtune: {_describe(err)}", file=sys.stderr)
        return 2
    except Exception:
        import traceback

        traceback.print_exc()
        print(REPORT_HINT, file=sys.stderr)
        return 1


def _describe(err: BaseException) -> str:
    """One line for an operating-system or encoding error: what failed, on which file, what to do."""
    if isinstance(err, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8"
    if isinstance(err, RecursionError):
        return "a file nests lists or objects too deeply to read; check its JSON"
    where = " -> ".join(str(p) for p in (err.filename, err.filename2) if p)
    reason = err.strerror or str(err)
    advice = {
        "FileNotFoundError": "check the path",
        "PermissionError": "choose a path you may write or read",
        "IsADirectoryError": "give a file, not a folder",
        "NotADirectoryError": "a part of the path is a file, not a folder",
        "FileExistsError": "choose another path",
    }.get(type(err).__name__, "check the path and the free disk space")
    return f"{where + ': ' if where else ''}{reason}; {advice}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cefrtune", description="CEFR word list -> level-appropriate Turkish sentences."
    )
    sub = parser.add_subparsers(title="commands")

    data = sub.add_parser("data", help="validate, describe and split list-format datasets").add_subparsers(
        title="data commands"
    )
    p = data.add_parser("validate", help="check datasets; exit 1 on any error")
    p.add_argument("files", nargs="*", help="JSONL or JSON-list files (default: the shipped datasets)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument("--n", type=int, default=10, help="words (and sentences) per example")
    p.add_argument("--max-shown", type=int, default=200, help="problems printed at most (all are counted)")
    p.add_argument("--near-duplicate-overlap", type=float, default=None,
                   help="share of common words that makes two sentences of a level near-duplicates (default 0.5)")
    p.add_argument("--near-duplicate-levels", default=None, help="levels compared for near-duplicates, e.g. A1,A2 "
                   "(default A2-C1)")
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
    p = sub.add_parser("run", help="the main job: split, train, evaluate, merge, generate, report",
                       epilog="`cefrtune config` lists the presets and every field --set can change, with its "
                              "default and what it does.")
    p.add_argument("--config", default=None,
                   help="a shipped preset (`cefrtune config` lists them) or a YAML file (default: a1)")
    p.add_argument("--output", default=None, help="run folder (default: runs/<level>-<time>)")
    p.add_argument(
        "--level", default=None, help="A1..C1, a list (A1,B1) or all: one adapter per level and a cross-level report"
    )
    p.add_argument("--model", default=None, help="base model (overrides the preset)")
    p.add_argument("--data", default=None, help="dataset file (overrides the preset)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N optimizer steps")
    p.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override any config field (repeatable)"
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last checkpoint")
    p.add_argument(
        "--joint", action="store_true", help="with several levels: also train one adapter on all of them and compare"
    )
    p.set_defaults(func=_run)

    p = sub.add_parser("config", help="the shipped presets and every run setting: type, default, what it does")
    p.set_defaults(func=_config)

    p = sub.add_parser("eval", help="loss and perplexity (full text and response) of a model, with its baseline")
    p.add_argument("--model", required=True, help="merged model folder (or any model)")
    p.add_argument("--data", required=True, help="examples (JSONL or JSON list)")
    p.add_argument("--base", default=None, help="baseline model (default: the base recorded in the merged folder)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_eval)

    p = sub.add_parser("generate", help="numbered sentences for word lists")
    p.add_argument("--model", required=True, help="merged model folder, adapter folder, or a base model")
    p.add_argument("--level", default=None)
    p.add_argument("--words", default=None, help="comma-separated words")
    p.add_argument("--input", default=None, help="JSON list of word lists, or examples (JSON/JSONL)")
    p.add_argument("--output", default=None, help="JSONL of results (with --input)")
    p.add_argument("--checked", action="store_true", help="check every sentence and regenerate failing ones")
    p.add_argument("--attempts", type=int, default=GENERATION.attempts, help="regeneration rounds in checked mode")
    p.add_argument("--candidates", type=int, default=GENERATION.candidates,
                   help="checked mode: sentences sampled for each failing sentence in a steered round "
                        "(the passing one the model finds most probable is kept)")
    p.add_argument("--free-attempts", type=int, default=GENERATION.free_attempts,
                   help="checked mode: unsteered rounds before the word's stem is written for the model "
                        "(-1: never steer)")
    p.add_argument("--polish", type=int, default=GENERATION.polish,
                   help="checked mode: sentences sampled for every passing sentence in a last round; the one the "
                        "model finds most probable, the sentence itself included, is kept (0: no such round)")
    p.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    p.add_argument("--temperature", type=float, default=GENERATION.temperature,
                   help="sampling temperature (with --sample, and in --checked's regeneration rounds)")
    p.add_argument("--top-p", type=float, default=GENERATION.top_p)
    p.add_argument("--seed", type=int, default=GENERATION.seed)
    p.add_argument("--batch-size", type=int, default=GENERATION.batch_size)
    p.add_argument("--max-new-tokens", type=int, default=GENERATION.max_new_tokens)
    p.set_defaults(func=_generate)

    p = sub.add_parser("serve", help="the teacher page and an HTTP API (OpenAI-compatible chat) over a model")
    p.add_argument(
        "--model", default=None, help="merged or adapter folder (default: the newest finished run under runs/)"
    )
    p.add_argument("--host", default=SERVE_HOST, help="address to bind; anything but loopback needs --api-key")
    p.add_argument("--port", type=int, default=SERVE_PORT)
    p.add_argument(
        "--api-key", default=None, help=f"key every /v1 call must send as a Bearer token (or ${SERVE_API_KEY_ENV})"
    )
    p.add_argument(
        "--feedback-db",
        default=None,
        help="SQLite file for teacher feedback (default: feedback.sqlite in the run folder)",
    )
    p.add_argument(
        "--attempts", type=int, default=GENERATION.attempts, help="regeneration rounds for failing sentences"
    )
    p.set_defaults(func=_serve)

    from cefrtune.export import DEFAULT_QUANT, QUANTS

    p = sub.add_parser("export", help="a run's merged model as one GGUF file for llama.cpp (and an Ollama Modelfile)")
    p.add_argument("run", help="run folder (or a merged model folder cefrtune wrote)")
    p.add_argument("--gguf", action="store_true", help="write a GGUF file (the export format)")
    p.add_argument(
        "--quant", choices=QUANTS, default=DEFAULT_QUANT, help=f"weights in the GGUF (default {DEFAULT_QUANT})"
    )
    p.add_argument("--ollama", action="store_true", help="also write an Ollama Modelfile beside the GGUF")
    p.add_argument("--output", default=None, help="folder for the files (default: RUN/gguf)")
    p.set_defaults(func=_export)

    p = data.add_parser("wordlists", help="check the word lists (one level per word, frequency by level)")
    p.add_argument("--write", action="store_true", help="recompute the zipf column in place")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_data_wordlists)

    p = data.add_parser("levels", help="level-ordering table of datasets (words, morphemes, readability, grammar)")
    p.add_argument("files", nargs="+")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_data_levels)
    _add_rate_parser(sub)
    return parser


def _add_rate_parser(sub) -> None:
    from cefrtune.rate import DEFAULT_SEED

    rate = sub.add_parser("rate", help="blind human rating of sentences: make a sheet, score the filled-in sheets")
    rate = rate.add_subparsers(title="rate commands")
    p = rate.add_parser("sheet", help="one shuffled sheet of the sources' sentences, with no source on it, and its key")
    p.add_argument("--source", action="append", required=True, metavar="NAME=PATH",
                   help="generate results (JSONL) or a dataset (JSONL / JSON list); repeat for each source")
    p.add_argument("--out", required=True, help="folder for sheet.csv, sheet.html, README.txt and key.csv")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the sampling and of the order")
    p.add_argument("--per-source", type=int, default=None, metavar="N", help="sample N sentence slots of each source")
    p.add_argument("--force", action="store_true", help="overwrite the files of an earlier sheet in --out")
    p.set_defaults(func=_rate_sheet)
    p = rate.add_parser("score", help="validate filled-in sheets; shares with Wilson intervals, kappa, "
                                               "checks' precision")
    p.add_argument("sheets", nargs="+", help="each rater's filled-in copy of sheet.csv (rater = file name)")
    p.add_argument("--key", required=True, help="the key.csv written with the sheet")
    p.add_argument("--rater", action="append", default=None, metavar="NAME",
                   help="rater names, one per sheet in order (repeat, or NAME,NAME); default: the file names")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--out", default=None, help="JSONL: one line per rated sentence, joined with the key")
    p.set_defaults(func=_rate_score)


def _rate_sheet(args) -> int:
    from cefrtune.rate import RatingError, make_sheet

    sources = {}
    try:
        for pair in args.source:
            name, sep, path = pair.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise RatingError(f"--source expects NAME=PATH (e.g. tuned=out.jsonl), got '{pair}'")
            if name.strip() in sources:
                raise RatingError(f"--source name '{name.strip()}' is given twice; give each source its own name")
            sources[name.strip()] = path.strip()
        result = make_sheet(sources, args.out, seed=args.seed, per_source=args.per_source, force=args.force)
    except RatingError as err:
        print(f"cefrtune: {err}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{name} {c['rows']}" + (f" (+{c['missing']} missing)" if c["missing"] else "")
                       for name, c in result["sources"].items())
    print(f"wrote {result['sheet']}, {result['html']} and {result['readme']}: {result['rows']} sentences ({counts})")
    if result["missing"]:
        print(f"{result['missing']} missing sentence(s) are in the key only; `rate score` counts them as not usable")
    print(f"wrote {result['key']}: keep it from the raters; hand out sheet.csv or sheet.html with README.txt only")
    return 0


def _rate_score(args) -> int:
    from cefrtune.rate import RatingError, format_summary, score

    raters = [n.strip() for names in args.rater for n in names.split(",")] if args.rater else None
    try:
        summary = score(args.sheets, args.key, raters=raters, out=args.out)
    except RatingError as err:
        print(f"cefrtune: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, ensure_ascii=False, indent=2) if args.json else format_summary(summary))
def _export(args) -> int:
    from cefrtune.export import export

    if not args.gguf:
        print("cefrtune export: say which format: --gguf (the only one so far)", file=sys.stderr)
        return 2
    result = export(args.run, quant=args.quant, ollama=args.ollama, out_dir=args.output)
    print(f"GGUF ({args.quant}, {result['bytes'] / 1e6:.0f} MB): {result['gguf']}")
    if result["modelfile"]:
        print(f"Ollama Modelfile: {result['modelfile']}  (ollama create NAME -f {result['modelfile']})")
    return 0


def _data_wordlists(args) -> int:
    from cefrtune.data import check_wordlists

    result = check_wordlists(write=args.write)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        for problem in result["problems"]:
            print(problem)
        for level, row in result["levels"].items():
            print(f"{level}: {row['words']} words, mean zipf {row['mean_zipf']}, median {row['median_zipf']}, "
                  f"below wordfreq's list {row.get('below_wordfreq', 0)}")
        print(f"frequency falls with level: {result['frequency_falls_with_level']}")
    return 1 if result["problems"] else 0


def _data_levels(args) -> int:
    from collections import defaultdict

    from cefrtune.data import level_ordering
    from cefrtune.examples import load_examples

    sets = defaultdict(list)
    for path in args.files:
        for example in load_examples(path):
            sets[example.level].extend(example.sentences)
    result = level_ordering(sets)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'level':6}{'sentences':>10}{'words/sent':>12}{'morph/word':>12}{'Ateşman':>9}{'own grammar':>13}")
    for level, row in result["levels"].items():
        print(f"{level:6}{row['sentences']:>10}{row['words_per_sentence']:>12}{row['morphemes_per_word']:>12}"
              f"{row['atesman']:>9}{row['level_grammar_share']:>13}")
    print("Spearman (level vs measure): " + ", ".join(f"{k} {v}" for k, v in result["spearman"].items()))
    return 0


def _overrides(pairs: list[str]) -> dict:
    import yaml

    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--set expects FIELD=VALUE, got '{pair}'")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value  # not YAML: kept as written; the config check says what is wrong with it
    return out


def _run(args) -> int:
    from cefrtune.config import DEFAULT_PRESET, ConfigError, load_config
    from cefrtune.run import run, run_levels
    from cefrtune.turkish import LEVELS

    levels = None
    if args.level and ("," in args.level or args.level.lower() == "all"):
        levels = list(LEVELS) if args.level.lower() == "all" else [lvl.strip().upper() for lvl in args.level.split(",")]
        unknown = [lvl for lvl in levels if lvl not in LEVELS]
        if unknown:
            print(f"cefrtune: unknown level(s) {', '.join(unknown)}; use {', '.join(LEVELS)} or all", file=sys.stderr)
            return 2
    overrides = _overrides(args.set)
    level = levels[0] if levels else (args.level.upper() if args.level else None)
    given = {"level": level, "model": args.model, "data": args.data, "max_steps": args.max_steps}
    overrides.update({k: v for k, v in given.items() if v is not None})  # `--max-steps 0` is checked, not ignored
    try:
        config = load_config(args.config or DEFAULT_PRESET, overrides)
    except ConfigError as err:
        print(f"cefrtune: {err}", file=sys.stderr)
        return 2
    if levels:
        if args.resume:
            print(
                "cefrtune: --resume continues one level's run folder; pass that folder with --output and one --level",
                file=sys.stderr,
            )
            return 2
        run_levels(config, levels, output=args.output, joint=args.joint)
    else:
        run(config, output=args.output, resume=args.resume)
    return 0


def _config(args) -> int:
    from cefrtune.config import describe

    print(describe())
    return 0


def _eval(args) -> int:
    from cefrtune.evaluate import evaluate

    result = evaluate(args.model, args.data, base=args.base)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['examples']} examples from {result['data']}")
    for side in ("baseline", "tuned"):
        if side in result:
            r = result[side]
            print(
                f"{side:9} full text loss {r['full_text_loss']:.4f} ppl {r['full_text_ppl']:.3f} | "
                f"response loss {r['response_loss']:.4f} ppl {r['response_ppl']:.3f}"
            )
    if "improvement" in result:
        print("improvement " + ", ".join(f"{k} {v:.1f}%" for k, v in result["improvement"].items()))
    return 0


def _generate(args) -> int:
    from cefrtune.generate import check_options, check_output, generate_into, read_requests
    from cefrtune.generation import RequestError, check_request
    from cefrtune.models import load_generator

    check_options(args.max_new_tokens, args.batch_size, args.temperature, args.top_p, args.attempts, args.candidates,
                  args.free_attempts, args.seed, args.polish)
    if args.input:
        requests = read_requests(args.input, level=args.level)
    elif args.words:
        requests = [check_request(args.level or "", [w.strip() for w in args.words.split(",")], 10, "--words")]
    else:
        raise RequestError("give --words (with --level) or --input")
    done = check_output(args.output, requests, args.input) if args.output else 0
    if done == len(requests) and args.output:
        print(f"{args.output} already holds all {done} result(s)")
        return 0
    if done:
        print(f"{args.output} holds {done} of {len(requests)} result(s); generating the rest", file=sys.stderr)
    model, tokenizer, style = load_generator(args.model)
    free = {} if args.free_attempts is None else {
        "free_attempts": None if args.free_attempts < 0 else args.free_attempts}
    results = generate_into(model, tokenizer, style, requests, args.output, done, checked=args.checked,
                            attempts=args.attempts, candidates=args.candidates, sample=args.sample,
                            temperature=args.temperature, top_p=args.top_p, seed=args.seed, batch_size=args.batch_size,
                            max_new_tokens=args.max_new_tokens, polish=args.polish,
                            on_summary=lambda s: print(json.dumps(s), file=sys.stderr), **free)
    if args.output:
        print(f"wrote {len(results)} result(s) to {args.output}" + (f" (after the {done} it held)" if done else ""))
        return 0
    for result in results:
        for i, sentence in enumerate(result["sentences"], start=1):
            flag = ""
            if "checks" in result and not result["checks"][i - 1]["passed"]:
                flag = "   [!] " + "; ".join(result["checks"][i - 1]["reasons"])
            print(f"{i}. {sentence if sentence else '(missing)'}{flag}")
        if result.get("issues"):
            print("format: " + "; ".join(result["issues"]), file=sys.stderr)
    return 0


def _serve(args) -> int:
    from cefrtune.serve import ServeError, serve

    try:
        serve(args.model, args.host, args.port, args.api_key, args.feedback_db, args.attempts)
    except ServeError as err:
        print(f"cefrtune: {err}", file=sys.stderr)
        return 2
    return 0


def _data_validate(args) -> int:
    from cefrtune.data import validate

    if args.n < 1 or args.max_shown < 0:
        raise UserError(f"--n must be 1 or more and --max-shown 0 or more (got {args.n} and {args.max_shown})")
    options = {}
    if args.near_duplicate_overlap is not None:
        options["near_duplicate_overlap"] = args.near_duplicate_overlap
    if args.near_duplicate_levels:
        options["near_duplicate_levels"] = tuple(lvl.strip().upper() for lvl in args.near_duplicate_levels.split(","))
    from cefrtune.resources import datasets

    report = validate(args.files or datasets(), n=args.n, **options)
    for problem in report.problems[: args.max_shown]:
        print(problem, file=sys.stderr if args.json else sys.stdout)
    if len(report.problems) > args.max_shown:
        print(
            f"... {len(report.problems) - args.max_shown} more (see --max-shown)",
            file=sys.stderr if args.json else sys.stdout,
        )
    if args.json:
        print(json.dumps(report.summary, ensure_ascii=False, indent=2))
    else:
        s = report.summary
        print(
            f"{s['examples']} examples, {s['sentences']} sentences, "
            f"{s['distinct_target_words']} distinct target words: "
            f"{s['errors']} errors, {s['warnings']} warnings"
        )
        print("near-duplicate pairs by level: " + ", ".join(f"{k} {v}" for k, v in s["near_duplicate_pairs"].items()))
        print("most used own-level grammar feature: "
              + ", ".join(f"{k} {v['feature']} {v['share']:.0%}" for k, v in s["top_grammar_feature_share"].items()))
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
