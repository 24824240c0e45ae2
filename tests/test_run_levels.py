"""`cefrtune run --level A1,B1` on a tiny local model folder: one run per level and a cross-level
report (the pipeline's code path, without the embedded model's minutes)."""

import json

import pytest

import tiny
from cefrtune.cli import main


def test_run_two_levels_with_a_local_model(tmp_path, capsys):
    tok = tiny.tokenizer()
    model_dir = tiny.save(tiny.llama(len(tok)), tok, tmp_path / "tiny-model")
    out = tmp_path / "levels"
    settings = ["--config", "smoke", "--model", model_dir, "--set", "train_dtype=fp32", "--set", "max_new_tokens=12",
                "--set", "checked_attempts=1", "--set", "max_seq_length=1024"]
    # A1 trained on its own (as on another device), then collected by the multi-level run
    assert main(["run", "--level", "A1", "--output", str(out / "a1"), *settings]) == 0
    a1_metrics = (out / "a1" / "metrics.json").read_text()
    capsys.readouterr()
    assert main(["run", "--level", "A1,B1", "--output", str(out), "--joint", *settings]) == 0
    assert "A1: using the finished run" in capsys.readouterr().out
    assert (out / "a1" / "metrics.json").read_text() == a1_metrics  # not trained again
    summary = json.loads((out / "levels.json").read_text())
    assert summary["levels"] == ["A1", "B1"]
    for level in ("a1", "b1"):
        assert (out / level / "report.md").exists() and (out / level / "merged" / "config.json").exists()
    rows = summary["ordering_reference"]["levels"]
    assert rows["A1"]["words_per_sentence"] < rows["B1"]["words_per_sentence"]
    report = (out / "levels_report.md").read_text()
    assert "Level ordering: reference sentences" in report and "| B1 |" in report
    assert set(summary["joint"]) == {"A1", "B1"}
    assert "One adapter for all levels" in report
    assert main(["run", "--level", "A1,X9"]) == 2

    # `cefrtune eval` on the merged model: its base is read from the folder; same figures as the run
    capsys.readouterr()
    eval_file = out / "a1" / "data" / "training_data_a1_list_format_eval.json"
    assert main(["eval", "--model", str(out / "a1" / "merged"), "--data", str(eval_file), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    run_metrics = json.loads((out / "a1" / "metrics.json").read_text())
    assert run_metrics["device"] == "cpu"  # where the stages after training ran (device: auto, no GPU here)
    assert result["tuned"]["response_loss"] == pytest.approx(run_metrics["tuned"]["response_loss"], rel=1e-5)
    assert result["baseline"]["full_text_loss"] == pytest.approx(run_metrics["baseline"]["full_text_loss"], rel=1e-5)
    assert set(result["improvement"]) == {
        "full_text_loss_pct",
        "full_text_ppl_pct",
        "response_loss_pct",
        "response_ppl_pct",
    }


def test_levels_too_long_for_max_seq_length_stop_before_training(tmp_path, capsys):
    """`--level A1,C1` with a max_seq_length C1's examples do not fit: stopped before A1 trains."""
    import dataclasses
    import re

    from cefrtune.config import load_config
    from cefrtune.examples import load_examples, write_examples
    from cefrtune.features import TooLongError
    from cefrtune.resources import data_path
    from cefrtune.run import check_levels

    data = tmp_path / "a1-c1.jsonl"  # a few examples of each level: validation stays quick
    write_examples(data, load_examples(data_path("a1.jsonl"))[:6] + load_examples(data_path("c1.jsonl"))[:6])
    tok = tiny.tokenizer()
    model_dir = tiny.save(tiny.llama(len(tok)), tok, tmp_path / "tiny-model")
    out = tmp_path / "levels"
    assert main(["run", "--level", "A1,C1", "--output", str(out), "--config", "smoke", "--model", model_dir,
                 "--data", str(data), "--set", "max_seq_length=64"]) == 2
    message = capsys.readouterr().err
    assert "max_seq_length=64 is too small for 2 of the 2 level(s); nothing was trained" in message
    assert re.search(r"A1: \S+a1-c1\.jsonl:[1-6] \(\S+\) has \d+ tokens", message), message
    assert re.search(r"C1: \S+a1-c1\.jsonl:([7-9]|1[0-2]) \(\S+\) has \d+ tokens", message), message
    assert not out.exists() or not any(out.iterdir())  # no level was started
    fits = int(re.search(r"--set max_seq_length=(\d+)` \(fits every level\)", message).group(1))
    config = load_config("smoke", {"model": model_dir, "data": str(data)})
    check_levels(dataclasses.replace(config, max_seq_length=fits), ["A1", "C1"])  # N fits every level
    with pytest.raises(TooLongError, match=r"1 of the 2 level\(s\).*\n  C1: "):  # N - 1 does not fit C1
        check_levels(dataclasses.replace(config, max_seq_length=fits - 1), ["A1", "C1"])
