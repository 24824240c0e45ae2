"""End to end: `cefrtune run --config smoke` on the embedded Gemma-3-270M (a few steps on a small
subset). Checks the files written and every metrics.json key. Minutes, not seconds: marked slow."""

import json
import math

import pytest

from cefrtune.cli import main
from cefrtune.run import MERGE_TOLERANCE

REQUIRED = [
    "level",
    "base_model",
    "train_examples",
    "eval_examples",
    "max_seq_length",
    "steps_per_epoch",
    "total_steps",
    "train_runtime_s",
    "train_tokens_per_s",
    "initial_train_loss",
    "final_train_loss",
    "best_eval_loss",
    "best_eval_epoch",
    "baseline",
    "tuned",
    "improvement",
    "effective_batch",
    "world_size",
    "merge_check",
]
LOSS_KEYS = ["full_text_loss", "full_text_ppl", "response_loss", "response_ppl"]
GENERATION_KEYS = [
    "format_valid",
    "target_word_used",
    "misplaced_words",
    "unknown_token_rate",
    "above_level_vocab_rate",
    "above_level_grammar_rate",
    "distinct_2",
    "repeated_sentence_rate",
    "copied_from_train_rate",
    "per_item",
]


@pytest.mark.slow
def test_smoke_run_writes_everything(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--config", "smoke", "--output", str(out)]) == 0
    for name in (
        "report.md",
        "metrics.json",
        "loss_curve.png",
        "config.yaml",
        "adapter/adapter_model.safetensors",
        "adapter/prompt_style.json",
        "merged/model.safetensors",
        "merged/config.json",
        "merged/prompt_style.json",
        "merged/generation_config.json",
        "checkpoints/last/state.pt",
        "data/training_data_a1_list_format_train.json",
        "data/training_data_a1_list_format_eval.json",
    ):
        assert (out / name).exists(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((out / "metrics.json").read_text())
    for key in REQUIRED:
        assert key in metrics, key
    for side in ("baseline", "tuned"):
        for key in LOSS_KEYS:
            assert math.isfinite(metrics[side][key])
        for key in GENERATION_KEYS:
            assert key in metrics[side]["generation"], (side, key)
        checked = metrics[side]["checked_generation"]
        for key in ("pass_rate_before", "pass_rate", "mean_attempts", "mean_samples", "sentences_per_s"):
            assert key in checked
        assert checked["candidates"] == 2 and checked["pass_rate"] >= checked["pass_rate_before"]
        assert checked["mean_samples"] >= checked["mean_attempts"] >= 1
    for key in LOSS_KEYS:
        assert f"{key}_pct" in metrics["improvement"]
    assert metrics["total_steps"] == math.ceil(metrics["train_examples"] / metrics["effective_batch"]) * 2
    assert metrics["steps_run"] == metrics["total_steps"] and not metrics["stopped_early"]
    assert set(metrics["peak_rss_mb_after_stage"]) == {
        "train",
        "evaluate_and_merge",
        "generate_baseline",
        "generate_tuned",
    }
    check = metrics["merge_check"]
    assert (
        check["merged_dtype"] == "bf16" and check["relative_difference"] < check["tolerance"] == MERGE_TOLERANCE["bf16"]
    )
    merged_config = json.loads((out / "merged" / "config.json").read_text())
    assert merged_config["dtype"] == "bfloat16"
    generation = json.loads((out / "merged" / "generation_config.json").read_text())
    assert (
        generation["eos_token_id"] == [1, 106]
        and generation["max_new_tokens"] > 100
        and not generation.get("do_sample")
    )
    for folder in ("merged", "adapter"):  # model cards with Hugging Face metadata
        card = (out / folder / "README.md").read_text()
        assert (
            card.startswith("---\nbase_model: google/gemma-3-270m\nlicense: gemma\n") and "Gemma Terms of Use" in card
        )
        assert "apply_chat_template" in card and "| answer loss (NLL/token) |" in card
    assert (
        json.loads((out / "adapter" / "cefrtune_model.json").read_text())["base_model_original"]
        == "google/gemma-3-270m"
    )
    assert metrics["reference_generation"]["format_valid"] == 1.0
    report = (out / "report.md").read_text()
    assert "Baseline comparison" in report and "loss_curve.png" in report
    assert "cefrtune run A1 finished" in capsys.readouterr().out
    # a second run into the same folder is refused, never overwritten
    assert main(["run", "--config", "smoke", "--output", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err

    # the merged model generates through the CLI, with its saved prompt style
    assert main(["generate", "--model", str(out / "merged"), "--level", "A1", "--max-new-tokens", "40",
                 "--words", "ev,su,okul,kitap,elma,kedi,araba,anne,güzel,gitmek"]) == 0
    printed = capsys.readouterr().out
    assert "1. " in printed and "10. " in printed
