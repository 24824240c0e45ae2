"""Does a run's merged model end its answer by itself in plain transformers?

    python benchmarks/plain_stop.py runs/a1-v10             # the run's 18 eval word lists
    python benchmarks/plain_stop.py runs/a1-v10 --dtype float32 --batch-size 6

What a user outside cefrtune does: load `merged/` with `AutoModelForCausalLM` and
`AutoTokenizer`, render each of the run's eval word lists through the saved chat template
(`apply_chat_template`), generate greedily with the saved generation config (its stop tokens and
token limit) and nothing else. Printed: how many answers end with a stop token before the limit,
how many of those parse into the full numbered list (cefrtune's parser, after generation), the
answer lengths in tokens, and the tail of the first answers. `--json FILE` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from cefrtune.prompts import PromptStyle, parse_numbered  # noqa: E402  (the user message and the parser only)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder (with merged/ and data/)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--batch-size", type=int, default=18)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    run = Path(args.run)
    folder = run / "merged"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, args.dtype)).eval()
    config = model.generation_config
    stops = set(config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id])
    eval_file = next((run / "data").glob("*_eval.json"))
    items = json.loads(eval_file.read_text(encoding="utf-8"))
    style = PromptStyle.load(folder)
    answers, started = [], time.perf_counter()
    for start in range(0, len(items), args.batch_size):
        batch = items[start : start + args.batch_size]
        messages = [[{"role": "user", "content": style.user_message(item["level"], item["words"])}] for item in batch]
        inputs = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True, padding=True
        )
        with torch.no_grad():
            output = model.generate(**inputs)
        for row in output[:, inputs["input_ids"].shape[1] :].tolist():
            while row and row[-1] == config.pad_token_id and config.pad_token_id not in stops:
                row.pop()
            answers.append(row)
    seconds = time.perf_counter() - started
    stopped = [bool(a) and a[-1] in stops and len(a) <= config.max_new_tokens for a in answers]
    complete = [
        s and parse_numbered(tokenizer.decode(a[:-1]), len(item["words"]), style, item["words"]).format_valid
        for s, a, item in zip(stopped, answers, items)
    ]
    figures = {
        "run": str(run),
        "dtype": args.dtype,
        "answers": len(answers),
        "stopped": sum(stopped),
        "stopped_and_complete": sum(complete),
        "stop_rate": round(sum(stopped) / len(answers), 3),
        "complete_rate": round(sum(complete) / len(answers), 3),
        "max_new_tokens": config.max_new_tokens,
        "mean_tokens": round(sum(map(len, answers)) / len(answers), 1),
        "longest_tokens": max(map(len, answers)),
        "seconds": round(seconds, 1),
    }
    print(json.dumps(figures, indent=2))
    for answer in answers[:3]:
        print("...", repr(tokenizer.decode(answer)[-120:]))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
