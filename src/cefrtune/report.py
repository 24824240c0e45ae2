"""The report stage: `report.md`, `metrics.json` and `loss_curve.png` of a run folder.

Every figure comes from the run's own records (trainer history, evaluation, generation);
`check_consistency` asserts the derived ones (e.g. total_steps = ceil(train_examples /
effective batch) x epochs) before anything is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from cefrtune.files import write_text_atomic

GEN_KEYS = ["format_valid", "target_word_used", "misplaced_words", "unknown_token_rate", "above_level_vocab_rate",
            "above_level_grammar_rate", "distinct_2", "repeated_sentence_rate", "copied_from_train_rate",
            "sentence_findings_rate", "pass_rate"]


class InconsistentReport(AssertionError):
    pass


def check_consistency(metrics: dict) -> None:
    problems = []
    expected_steps = math.ceil(metrics["train_examples"] / metrics["effective_batch"])
    if metrics["steps_per_epoch"] != expected_steps:
        problems.append(f"steps_per_epoch {metrics['steps_per_epoch']} != "
                        f"ceil({metrics['train_examples']}/{metrics['effective_batch']})")
    total = expected_steps * metrics["num_train_epochs"]
    if metrics.get("max_steps"):
        total = min(total, metrics["max_steps"])
    if metrics["total_steps"] != total:
        problems.append(f"total_steps {metrics['total_steps']} != {total}")
    if "steps_run" in metrics:
        ran = min(total, metrics["epochs_run"] * expected_steps)
        if metrics["steps_run"] != ran or (metrics["steps_run"] < total) != bool(metrics["stopped_early"]):
            problems.append(
                f"steps_run {metrics['steps_run']} != min({total}, {metrics['epochs_run']} epochs x {expected_steps})"
                f" or stopped_early {metrics['stopped_early']} does not match"
            )
    for side in ("baseline", "tuned") if "baseline" in metrics else ("tuned",):
        for name in ("full_text", "response"):
            loss, ppl = metrics[side][f"{name}_loss"], metrics[side][f"{name}_ppl"]
            if not math.isclose(math.exp(loss), ppl, rel_tol=1e-4):
                problems.append(f"{side}.{name}_ppl {ppl} != exp({loss})")
    if problems:
        raise InconsistentReport("metrics do not add up: " + "; ".join(problems))


def write(run_dir: Path, metrics: dict, history: list[dict], examples: list[dict] | None = None) -> None:
    check_consistency(metrics)
    write_text_atomic(run_dir / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    plot_losses(history, run_dir / "loss_curve.png")
    write_text_atomic(run_dir / "report.md", render(metrics, examples or []))


def _steps_run(m: dict) -> str:
    ran = m.get("steps_run", m["total_steps"])
    if m.get("stopped_early"):
        return (
            f"{ran} run: stopped after epoch {m['epochs_run']}, {m['epochs_run'] - m['best_eval_epoch']} epochs "
            f"without a better eval loss (early_stopping_patience {m['early_stopping_patience']})"
        )
    return f"{ran} run"


def plot_losses(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", marker=".")
    if evals:
        ax.plot(*zip(*evals), label="eval loss (per epoch)", marker="o")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("mean NLL per token")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _size(path: Path) -> str:
    if not path.exists():
        return "-"
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    return f"{total / 1e6:.1f} MB"


def render(m: dict, examples: list[dict]) -> str:
    run_dir = Path(m["run_dir"])
    lines = [
        f"# {m['level']} fine-tuning: results",
        "",
        "## Model",
        f"- **Base model:** {m['base_model']} ({m['base_model_source']}, "
        f"revision `{(m.get('base_model_revision') or '-')[:16]}`)",
        f"- **Method:** LoRA (PEFT), cefrtune trainer, {m['world_size']} process(es) on {m['device']}",
        f"- **Prompt style:** {m['prompt_style']}",
        "",
        "## Dataset",
        f"- **File:** `{m['data']}` (sha256 `{m['data_sha256'][:16]}`)",
        f"- **Train / eval:** {m['train_examples']} / {m['eval_examples']} examples "
        f"(eval fraction {m['eval_fraction']}, seed {m['seed']})",
        f"- **Longest example:** {m['longest_example_tokens']} tokens (max_seq_length {m['max_seq_length']})",
        "",
        "## Hyperparameters",
        "| setting | value |",
        "|---|---|",
    ]
    for key in (
        "max_seq_length", "per_device_train_batch_size", "gradient_accumulation_steps", "world_size",
        "effective_batch", "learning_rate", "num_train_epochs", "warmup_ratio", "lr_scheduler", "lora_r",
        "lora_alpha", "lora_dropout", "target_modules", "loss_on", "train_dtype",
    ):
        lines.append(f"| {key} | {m[key]} |")
    lines += [
        "",
        "## Training",
        f"- **Duration:** {m['train_runtime_s']:.0f} s ({m['train_tokens_per_s']:.0f} tokens/s); "
        f"whole run {m['run_wall_s']:.0f} s",
        f"- **Peak memory (RSS):** {m['peak_rss_mb'] / 1024:.1f} GB; after each stage: "
        + ", ".join(f"{stage} {mb / 1024:.1f} GB" for stage, mb in m.get("peak_rss_mb_after_stage", {}).items()),
        f"- **Steps:** {m['steps_per_epoch']} per epoch x {m['num_train_epochs']} epochs = {m['total_steps']} planned "
        f"(ceil({m['train_examples']} / {m['effective_batch']}) per epoch); {_steps_run(m)}",
        f"- **Train loss:** {m['initial_train_loss']:.3f} at the first step -> {m['final_train_loss']:.3f} at the last",
        f"- **Best eval loss:** {m['best_eval_loss']:.3f} (epoch {m['best_eval_epoch']}; this adapter is kept)",
        "",
        "![loss curve](loss_curve.png)",
        "",
    ]
    lines += _baseline_comparison(m)
    lines += [
        "",
        f"Merge check: merged-model response loss {m['merge_check']['merged']:.6f} vs adapter-on-base "
        f"{m['merge_check']['adapter']:.6f} (relative difference {m['merge_check']['relative_difference']:.2e}, "
        f"limit {m['merge_check'].get('tolerance', 1e-3):.0e}, "
        f"saved in {m['merge_check'].get('merged_dtype', 'fp32')}).",
    ]
    if "generation" in m.get("tuned", {}):
        # with `baseline: skip` the baseline columns are left out
        sides = ("baseline", "tuned") if "baseline" in m else ("tuned",)
        lines += ["", "## Generated sentences (eval word lists)", "",
                  "Greedy decoding; references = the human-written eval sentences (the ceiling).", "",
                  f"| metric | reference | {' | '.join(sides)} |", "|---|---|" + "---|" * len(sides)]
        for key in GEN_KEYS:
            row = [m.get("reference_generation", {}).get(key, "-")] + [
                m[side]["generation"].get(key, "-") for side in sides
            ]
            lines.append(f"| {key} | " + " | ".join(_fmt(v) for v in row) + " |")
        if "checked_generation" in m["tuned"]:
            tuned = m["tuned"]["checked_generation"]
            budget = (
                f" ({tuned['attempt_budget']} rounds; candidates a failing sentence: "
                f"{tuned.get('free_candidates', 1)} in a free round, {tuned.get('candidates', 1)} in a steered one)"
                if "attempt_budget" in tuned
                else ""
            )
            lines += [
                "",
                "### Checked generation",
                "",
                f"Every sentence checked; failing ones regenerated{budget}; what still fails is flagged. "
                "mean_attempts counts the rounds that wrote a sentence, mean_samples every sentence generated for it.",
                "",
                f"| | {' | '.join(sides)} |",
                "|---|" + "---|" * len(sides),
            ]
            for key in (
                "pass_rate_before",
                "pass_rate",
                "flagged",
                "mean_attempts",
                "mean_samples",
                "sentences_per_s",
                "seconds",
            ):
                row = [m[side].get("checked_generation", {}).get(key, "-") for side in sides]
                lines.append(f"| {key} | " + " | ".join(_fmt(v) for v in row) + " |")
        for ex in examples[:3]:
            lines += ["", f"**Words ({ex['level']}):** {', '.join(ex['words'])}", "", f"| # | {' | '.join(sides)} |",
                      "|---|" + "---|" * len(sides)]
            for i in range(len(ex["words"])):
                lines.append(f"| {i + 1} | " + " | ".join(_cell(ex[side][i]) for side in sides) + " |")
    lines += [
        "",
        "## Output",
        f"- **LoRA adapter:** `adapter/` ({_size(run_dir / 'adapter')})",
        f"- **Merged model:** `merged/` ({_size(run_dir / 'merged')}), "
        "loads with `AutoModelForCausalLM.from_pretrained`",
        f"- **TensorBoard logs:** `tensorboard/` (`tensorboard --logdir {run_dir / 'tensorboard'}`)",
        "- **Metrics:** `metrics.json`; **config:** `config.yaml`; **split:** `data/`",
        "",
        "## Notes",
        "- Loss is the token-weighted mean NLL; perplexity = exp(loss). The full-text figures include the instruction",
        "  tokens (as the seed report did); the response-only figures measure what the model writes.",
        f"- Steps follow from the batch: {m['train_examples']} examples / ({m['per_device_train_batch_size']} x "
        f"{m['gradient_accumulation_steps']} x {m['world_size']}) rounded up = {m['steps_per_epoch']} per epoch.",
        "",
    ]
    return "\n".join(lines)


def _baseline_comparison(m: dict) -> list[str]:
    """The baseline-vs-tuned loss table and where the baseline came from; the tuned figures alone
    when the baseline was skipped."""
    source = m.get("baseline_source", {})
    if "baseline" not in m:
        lines = ["## Tuned model (no baseline)",
                 "The baseline was skipped (`baseline: skip`): no baseline figures and no improvement. "
                 f"Merged tuned model on the eval file, {m['eval_examples']} examples.", "",
                 "| metric | tuned |", "|---|---|"]
    else:
        lines = [
            "## Baseline comparison",
            f"Same eval file, same code path (base model vs merged tuned model), {m['eval_examples']} examples.",
            "",
            "| metric | baseline | tuned | improvement |",
            "|---|---|---|---|",
        ]
    for name, label in (("full_text", "full text (instruction + response)"), ("response", "response only")):
        for kind in ("loss", "ppl"):
            key = f"{name}_{kind}"
            metric = f"{label} {'loss' if kind == 'loss' else 'perplexity'}"
            if "baseline" in m:
                lines.append(f"| {metric} | {m['baseline'][key]:.3f} | {m['tuned'][key]:.3f} | "
                             f"{m['improvement'][key + '_pct']:.1f} % |")
            else:
                lines.append(f"| {metric} | {m['tuned'][key]:.3f} |")
    if source.get("source") == "cache":
        lines += ["", f"The baseline's figures (loss and generation) come from the baseline cache `{source['path']}`: "
                  f"computed by the run `{source['computed_by']}` at {source['computed_at']} with the same base model, "
                  "eval set and settings (`baseline: recompute` computes them again)."]
    elif source.get("source") == "computed" and source.get("computed_at"):
        lines += ["", f"The baseline was computed by this run and stored in the baseline cache `{source['path']}`."]
    return lines


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _cell(text) -> str:
    return (text or "*(missing)*").replace("|", "\\|")


def render_levels(summary: dict) -> str:
    """The cross-level report of `cefrtune run --level all`."""
    lines = [
        "# All levels: results",
        "",
        "## Loss and perplexity (eval split of each level; baseline -> tuned)",
        "",
        "| level | train / eval | steps | response loss | response ppl | full-text loss "
        "| improvement (response loss) |",
        "|---|---|---|---|---|---|---|",
    ]
    for level, m in summary["per_level"].items():
        t = m["tuned"]
        b = m.get("baseline")  # absent with `baseline: skip`: tuned figures only
        pair = {key: (f"{b[key]:{spec}} -> " if b else "") + f"{t[key]:{spec}}"
                for key, spec in (("response_loss", ".3f"), ("response_ppl", ".2f"), ("full_text_loss", ".3f"))}
        gain = f"{m['improvement']['response_loss_pct']:.1f} %" if "improvement" in m else "-"
        lines.append(
            f"| {level} | {m['train_examples']} / {m['eval_examples']} | {m.get('steps_run', m['total_steps'])} | "
            f"{pair['response_loss']} | {pair['response_ppl']} | {pair['full_text_loss']} | {gain} |"
        )
    if any("generation" in m["tuned"] for m in summary["per_level"].values()):
        lines += [
            "",
            "## Generated sentences (tuned model, greedy)",
            "",
            "| level | format_valid | target_word_used | unknown_token_rate | above_level_grammar_rate | pass_rate |",
            "|---|---|---|---|---|---|",
        ]
        for level, m in summary["per_level"].items():
            g = m["tuned"].get("generation", {})
            lines.append(
                f"| {level} | "
                + " | ".join(
                    _fmt(g.get(k, "-"))
                    for k in (
                        "format_valid",
                        "target_word_used",
                        "unknown_token_rate",
                        "above_level_grammar_rate",
                        "pass_rate",
                    )
                )
                + " |"
            )
    if summary.get("joint"):
        lines += ["", "## One adapter for all levels vs one per level", "",
                  "Response loss on each level's eval split (lower is better).", "",
                  "| level | per-level adapter | joint adapter |", "|---|---|---|"]
        for level, row in summary["joint"].items():
            lines.append(f"| {level} | {row['per_level_response_loss']:.3f} | {row['joint_response_loss']:.3f} |")
    for title, key in (("reference sentences", "ordering_reference"), ("generated sentences", "ordering_generated")):
        ordering = summary.get(key) or {}
        if not ordering:
            continue
        lines += [
            "",
            f"## Level ordering: {title}",
            "",
            "| level | sentences | words / sentence | morphemes / word | Ateşman readability | own-level grammar |",
            "|---|---|---|---|---|---|",
        ]
        for level, row in ordering["levels"].items():
            lines.append(f"| {level} | {row['sentences']} | {row['words_per_sentence']} | {row['morphemes_per_word']} "
                         f"| {row['atesman']} | {row['level_grammar_share']} |")
        if ordering.get("spearman"):
            lines += [
                "",
                "Spearman correlation with the level (positive = harder as the level rises; readability negated): "
                + ", ".join(f"{k} {v}" for k, v in ordering["spearman"].items()),
            ]
    return "\n".join(lines) + "\n"
