"""Training throughput: cefrtune's trainer against plain TRL SFTTrainer + PEFT, side by side.

    python benchmarks/train_throughput.py            # default: 6 optimizer steps, batch 8, r 128
    python benchmarks/train_throughput.py --short    # 3 steps, a quick check
    python benchmarks/train_throughput.py --model PATH --steps 10
    python benchmarks/train_throughput.py --contenders trl_bf16,trl_speed,cefrtune
    python benchmarks/train_throughput.py --contenders trl_bf16,cefrtune,cefrtune:heap_trim_above_gb=null
    python benchmarks/train_throughput.py --rounds 2      # every contender twice, interleaved

Same model, data (the A1 train split), LoRA config (all linear layers), batch and number of
optimizer steps for every contender; each runs in its own process, one after another, so peak
RSS is its own. Printed per contender: tokens/s, peak RSS, train loss after the steps and
response loss on the eval split (computed by the same code for all); then the speed ratios and
cefrtune's model FLOPs utilisation against a bf16 matmul peak measured in this run.
The TRL contenders: `trl_bf16` (fp32 weights, bf16 autocast: TRL's defaults, gradient checkpointing
on), `trl_fp32` (fp32 throughout) and `trl_speed` (TRL set for speed: bf16 weights, bf16 autocast,
gradient checkpointing off, which SFTConfig turns on by default).
`--contenders` picks contenders, each named once; `cefrtune:FIELD=VALUE[:FIELD=VALUE]` runs cefrtune
with config overrides (a lever switched off or on), measured against the same TRL runs.
Figures are ratios within one run: the machine is shared and absolute times drift, by tens of
percent within minutes on a busy host. `--rounds N` runs the whole list N times, interleaved,
and reports each contender's median with the range, and the speed-up within each round.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

# TRL contenders: (weights dtype, bf16 autocast, gradient checkpointing)
TRL = {"trl_bf16": (torch.float32, True, True), "trl_fp32": (torch.float32, False, True),
       "trl_speed": (torch.bfloat16, True, False)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lora-r", type=int, default=128)
    parser.add_argument("--short", action="store_true", help="3 steps and a smaller eval set")
    parser.add_argument(
        "--no-compile", action="store_true", help="cefrtune without torch.compile (to measure the lever)"
    )
    parser.add_argument("--contenders", default="trl_bf16,trl_fp32,cefrtune",
                        help="comma-separated: trl_bf16, trl_fp32, trl_speed, cefrtune, "
                             "cefrtune:FIELD=VALUE[:FIELD=VALUE]")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the contender list this many times, interleaved; medians are reported",
    )
    parser.add_argument("--only", help="run one contender (used internally)")
    args = parser.parse_args()
    if args.short:
        args.steps = 3
    if args.only:
        print(json.dumps(run_one(args)))
        return
    contenders = args.contenders.split(",")
    unknown = [c for c in contenders if c.split(":")[0] not in (*TRL, "cefrtune") or (c.startswith("trl") and ":" in c)]
    if (
        unknown
        or not any(c.startswith("trl_bf16") for c in contenders)
        or not any(c.startswith("cefrtune") for c in contenders)
    ):
        sys.exit(
            "--contenders needs trl_bf16 and at least one cefrtune[:FIELD=VALUE...]; "
            f"not understood: {', '.join(unknown) or '-'}"
        )
    if len(set(contenders)) < len(contenders) or args.rounds < 1:
        sys.exit("--contenders names each contender once and --rounds is at least 1 (use --rounds N to repeat them)")
    runs = {name: [] for name in contenders}
    for round_ in range(1, args.rounds + 1):
        for name in contenders:
            cmd = (
                [
                    sys.executable,
                    __file__,
                    "--only",
                    name,
                    "--model",
                    args.model,
                    "--steps",
                    str(args.steps),
                    "--batch",
                    str(args.batch),
                    "--lora-r",
                    str(args.lora_r),
                ]
                + (["--short"] if args.short else [])
                + (["--no-compile"] if args.no_compile else [])
            )
            print(
                f"running {name}" + (f" (round {round_} of {args.rounds})" if args.rounds > 1 else "") + " ...",
                flush=True,
            )
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(out.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{name} failed")
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    results = {name: median_run(r) for name, r in runs.items()}
    peak = bf16_peak_gflops()
    print()
    width = max(12, *(len(n) + 1 for n in results))
    print(
        f"{'contender':{width}}{'tokens/s':>10}{'(all steps)':>12}{'1st step s':>11}{'peak RSS':>11}"
        f"{'train loss':>12}{'eval loss':>11}"
    )
    for name, r in results.items():
        print(f"{name:{width}}{r['tokens_per_s']:>10.1f}{r['tokens_per_s_all_steps']:>12.1f}{r['first_step_s']:>11.1f}"
              f"{r['peak_rss_mb'] / 1024:>9.2f}GB{r['train_loss']:>12.4f}{r['eval_loss']:>11.4f}")
    print()
    print("tokens/s: steps 2.. (every contender's first step holds its one-off warm-up; cefrtune's holds the compile)")
    if args.rounds > 1:
        print(f"each row: the round with the median tokens/s of {args.rounds}; tokens/s of every round:")
        for name, r in runs.items():
            print(f"  {name}: " + ", ".join(f"{x['tokens_per_s']:.1f}" for x in r))
    for name in (n for n in results if n.startswith("cefrtune")):
        c = results[name]
        print()
        for peer in (p for p in TRL if p in results):
            all_steps = c["tokens_per_s_all_steps"] / results[peer]["tokens_per_s_all_steps"]
            print(
                f"speed-up {name} / {peer}: {c['tokens_per_s'] / results[peer]['tokens_per_s']:.2f}x "
                f"(all steps, first included: {all_steps:.2f}x)"
                + (
                    " ; within each round: "
                    + ", ".join(f"{a['tokens_per_s'] / b['tokens_per_s']:.2f}x" for a, b in zip(runs[name], runs[peer]))
                    if args.rounds > 1
                    else ""
                )
            )
        trl_loss = results["trl_bf16"]["eval_loss"]
        print(f"eval loss difference {name} vs TRL bf16: {100 * (c['eval_loss'] - trl_loss) / trl_loss:+.2f} %")
        achieved = c["flops_per_token"] * c["tokens_per_s"] / 1e9
        shape = bf16_peak_gflops(2048, c["hidden_size"], c["intermediate_size"])  # the model's own MLP shape
        print(
            f"{name} model FLOPs: {achieved:.0f} GFLOP/s -> MFU {100 * achieved / peak:.1f} % of a bf16 matmul peak "
            f"of {peak:.0f} GFLOP/s (2048x2048x2048), {100 * achieved / shape:.1f} % of the {shape:.0f} GFLOP/s "
            "the same matmul kernel reaches "
            f"at this model's own layer shape (2048 tokens x {c['hidden_size']} x {c['intermediate_size']})"
        )


def median_run(runs: list[dict]) -> dict:
    """The run with the median tokens/s (the lower middle one for an even count)."""
    ordered = sorted(runs, key=lambda r: r["tokens_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def bf16_peak_gflops(m: int = 2048, k: int = 2048, n: int = 2048) -> float:
    """Best rate of a bf16 [m x k] @ [k x n] matmul here, in GFLOP/s (the best of 5 timed rounds)."""
    a = torch.randn(m, k, dtype=torch.bfloat16)
    b = torch.randn(k, n, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        best = max(best, 10 * 2 * m * k * n / (time.perf_counter() - start) / 1e9)
    return best


def load_split(short: bool):
    from cefrtune.data import split_examples
    from cefrtune.examples import load_examples
    from cefrtune.resources import data_path

    train, evaluation = split_examples(load_examples(data_path("a1.jsonl")), 0.1, 42)
    return train, evaluation[:6] if short else evaluation


def run_one(args) -> dict:
    from cefrtune import memory, models
    from cefrtune.evaluate import loss_metrics
    from cefrtune.features import tokenize_examples
    from cefrtune.prompts import PromptStyle

    train_examples, eval_examples = load_split(args.short)
    used = [train_examples[i % len(train_examples)] for i in range(args.steps * args.batch)]
    name = args.only.split(":")[0]
    dtype = TRL[name][0] if name in TRL else torch.bfloat16
    model, tokenizer, _ = models.load(args.model, dtype=dtype)
    style = PromptStyle.for_tokenizer(tokenizer)
    features = tokenize_examples(used, tokenizer, style, "response", None)
    tokens = sum(len(f["input_ids"]) for f in features)
    if name.startswith("trl"):
        steps, train_loss, model = run_trl(model, tokenizer, style, used, args, *TRL[name][1:])
    else:
        steps, train_loss, model = run_cefrtune(model, tokenizer, used, eval_examples, args, overrides(args.only))
    eval_loss = loss_metrics(model.float(), tokenizer, style, eval_examples)["response_loss"]
    later = steps[1:] or steps
    return {
        "tokens_per_s": sum(t for t, _ in later) / sum(s for _, s in later),
        "tokens_per_s_all_steps": sum(t for t, _ in steps) / sum(s for _, s in steps),
        "first_step_s": steps[0][1],
        "seconds": sum(s for _, s in steps),
        "tokens": tokens,
        "hidden_size": model.config.hidden_size,
        "intermediate_size": model.config.intermediate_size,
        "flops_per_token": training_flops(model, features, args.lora_r) / tokens,
        "train_loss": train_loss,
        "eval_loss": eval_loss,
        "peak_rss_mb": memory.peak_rss_mb(),
    }


def run_trl(model, tokenizer, style, examples, args, bf16: bool, checkpointing: bool):
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    rows = [
        {
            "prompt": style.prompt(e.level, e.words, tokenizer),
            "completion": style.response(e.sentences, e.words, tokenizer),
        }
        for e in examples
    ]
    config = SFTConfig(
        output_dir="/tmp/cefrtune-bench-trl", per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
        max_steps=args.steps, learning_rate=2e-4, warmup_steps=0, lr_scheduler_type="linear", bf16=bf16,
        use_cpu=True, report_to=[], logging_steps=1, save_strategy="no", max_length=512, seed=42,
        dataloader_drop_last=False, completion_only_loss=True, gradient_checkpointing=checkpointing,
    )
    lora = LoraConfig(
        r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    trainer = SFTTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=lora
    )
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.model.register_forward_pre_hook(timer.count_tokens, with_kwargs=True)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return timer.steps, losses[-1], trainer.model.merge_and_unload()


class StepTimer(TrainerCallback):
    """Per-step (tokens, seconds) of a transformers Trainer: tokens counted from the attention
    masks the model is called with."""

    def __init__(self):
        self.steps, self.tokens, self.started = [], 0, 0.0

    def count_tokens(self, module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if torch.is_grad_enabled() and mask is not None:
            self.tokens += int(mask.sum())

    def on_step_begin(self, args, state, control, **kwargs):
        self.tokens, self.started = 0, time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append((self.tokens, time.perf_counter() - self.started))


def overrides(contender: str) -> dict:
    """`cefrtune:heap_trim_above_gb=null:compile=false` -> {"heap_trim_above_gb": None, "compile": False},
    parsed as the CLI parses `--set`."""
    from cefrtune.cli import _overrides

    return _overrides(contender.split(":")[1:])


def run_cefrtune(model, tokenizer, examples, eval_examples, args, changes: dict):
    from cefrtune.config import load_config
    from cefrtune.train import train

    config = load_config(
        None,
        dict(
            model=args.model,
            per_device_train_batch_size=args.batch,
            gradient_accumulation_steps=1,
            max_steps=args.steps,
            num_train_epochs=1,
            learning_rate=2e-4,
            warmup_ratio=0.0,
            lora_r=args.lora_r,
            lora_alpha=2 * args.lora_r,
            generate=False,
            compile=not args.no_compile,
        )
        | changes,
    )
    out = Path("/tmp/cefrtune-bench-cefrtune")
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    result = train(config, examples, eval_examples[:1], out, model=model, tokenizer=tokenizer)
    from peft import PeftModel

    merged = PeftModel.from_pretrained(
        model.get_base_model() if hasattr(model, "get_base_model") else model, out / "adapter"
    )
    steps = [(h["tokens"], h["seconds"]) for h in result.history if "tokens" in h]
    return steps, result.final_train_loss, merged.merge_and_unload()


def training_flops(model, features, lora_r: int) -> float:
    """Model FLOPs of LoRA training: frozen body forward + input-gradient (4 x params x tokens),
    LoRA forward + both gradients (6 x LoRA params x tokens), LM head on answer tokens only
    (forward + input-gradient: 4 x vocab x hidden each). Attention scores are left out (small at
    these lengths)."""
    config = model.config
    head = config.vocab_size * config.hidden_size
    linear = [p for n, p in model.named_parameters() if "embed" not in n and "lm_head" not in n and p.dim() == 2]
    body = sum(p.numel() for p in linear)
    lora = sum(lora_r * (p.shape[0] + p.shape[1]) for p in linear)
    tokens = sum(len(f["input_ids"]) for f in features)
    answer = sum(f["n_labels"] for f in features)
    return 4 * body * tokens + 6 * lora * tokens + 4 * head * answer


if __name__ == "__main__":
    main()
