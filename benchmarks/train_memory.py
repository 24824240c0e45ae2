"""Training memory: resident memory per epoch with and without giving freed heap back, side by side.

    python benchmarks/train_memory.py                 # default: 4 epochs of 64 A1 examples, one step each
    python benchmarks/train_memory.py --epochs 2 --examples 32

The same short training run (embedded model, the seed's batch and LoRA settings, compiled layers)
runs once per contender, each in its own process so peak RSS is its own:

    plain     cefrtune's trainer with the heap trimming switched off (garbage collection only)
    step      the heap given back after each optimizer step only (`heap_trim_above_gb: null`)
    trimmed   as shipped (`cefrtune.memory`): after each optimizer step, and after a micro-batch
              once the process passes `heap_trim_above_gb` (4 GB)
    arenas    (only with --contenders) no trimming, glibc limited to one malloc arena
              (MALLOC_ARENA_MAX=1). Measured: it holds as much as plain, so the retained heap is
              not the threads' separate arenas.

Printed per contender and epoch: resident memory after the epoch's checkpoint, peak so far, and
training tokens/s; then the peak ratio and the speed ratio (the machine is noisy: compare ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CONTENDERS = ("plain", "step", "trimmed", "arenas")
ARENAS = "1"  # glibc malloc arenas for the `arenas` contender (MALLOC_ARENA_MAX)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--examples", type=int, default=64, help="training examples (from the A1 train split)")
    parser.add_argument("--only", choices=CONTENDERS, help="run one contender (used internally)")
    parser.add_argument(
        "--contenders", default="plain,step,trimmed", help="comma-separated, of " + ", ".join(CONTENDERS)
    )
    args = parser.parse_args()
    if args.only:
        print(json.dumps(run_one(args)))
        return
    results = {}
    for name in args.contenders.split(","):
        print(f"running {name} ...", flush=True)
        cmd = [sys.executable, __file__, "--only", name, "--epochs", str(args.epochs), "--examples", str(args.examples)]
        env = dict(os.environ, **({"MALLOC_ARENA_MAX": ARENAS} if name == "arenas" else {}))
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{name} failed")
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print()
    print(f"{'contender':10}{'epoch':>6}{'RSS MB':>9}{'peak MB':>9}")
    for name, r in results.items():
        for e in r["epochs"]:
            print(f"{name:10}{e['epoch']:>6}{e['rss_mb']:>9.0f}{e['peak_mb']:>9.0f}")
    plain = results.get("plain") or next(iter(results.values()))
    print()
    for name, r in results.items():
        print(
            f"{name:10} peak {r['peak_mb'] / 1024:.2f} GB ({r['peak_mb'] / plain['peak_mb']:.2f}x plain), "
            f"{r['tokens_per_s']:.0f} tokens/s after the first step "
            f"({r['tokens_per_s'] / plain['tokens_per_s']:.2f}x plain), "
            f"eval loss {r['best_eval_loss']:.4f}"
        )


def run_one(args) -> dict:
    import cefrtune.train as train_module
    from cefrtune import memory
    from cefrtune.config import load_config
    from cefrtune.data import split_examples
    from cefrtune.examples import load_examples

    if args.only in ("plain", "arenas"):
        import gc

        memory.release = lambda collect=True: gc.collect() if collect else None
        memory.trim_if_above = lambda limit_mb=0: None
    epochs = []
    save = train_module._save_checkpoint

    def record(folder, model, optimizer, scheduler, state):
        save(folder, model, optimizer, scheduler, state)
        epochs.append({"epoch": state["epoch"], "rss_mb": memory.rss_mb(), "peak_mb": memory.peak_rss_mb()})

    train_module._save_checkpoint = record
    overrides = {"num_train_epochs": args.epochs, "compile": True, "early_stopping_patience": None}
    if args.only == "step":
        overrides["heap_trim_above_gb"] = None
    config = load_config("a1-seed", overrides)
    examples = [e for e in load_examples(config.data_path()) if e.level == config.level]
    train_examples, eval_examples = split_examples(examples, config.eval_fraction, config.seed)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = train_module.train(config, train_examples[: args.examples], eval_examples, out)
        wall = time.perf_counter() - started
    steps = [h for h in result.history if "tokens" in h]
    steps = steps[1:] or steps  # the first step holds the compile
    return {
        "epochs": epochs,
        "peak_mb": memory.peak_rss_mb(),
        "tokens_per_s": sum(h["tokens"] for h in steps) / sum(h["seconds"] for h in steps),
        "best_eval_loss": result.best_eval_loss,
        "wall_s": wall,
    }


if __name__ == "__main__":
    main()
