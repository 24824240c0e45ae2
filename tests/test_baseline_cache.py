"""The baseline cache (cefrtune.baseline_cache) through `cefrtune.run.run` on a tiny local model: a
second run with the same base model, eval set and settings reuses the first run's baseline without
evaluating or generating with the base model; a changed eval set or setting, `recompute` and a
corrupt cache entry compute it again; `skip` leaves the baseline out of metrics, report and card."""

import json

import pytest

import tiny
from cefrtune import run as run_module
from cefrtune.config import ConfigError, load_config
from cefrtune.run import run

SETTINGS = {"train_dtype": "fp32", "max_new_tokens": 12, "checked_attempts": 1, "max_seq_length": 1024}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tok = tiny.tokenizer()
    return tiny.save(tiny.llama(len(tok)), tok, tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def calls(monkeypatch):
    """How often the run evaluated a model's loss and generated with the base model."""
    import cefrtune.evaluate

    counts = {"loss_metrics": 0, "baseline_generation": 0}
    loss_metrics, generation = cefrtune.evaluate.loss_metrics, run_module._generation

    def counted_loss(*args, **kwargs):
        counts["loss_metrics"] += 1
        return loss_metrics(*args, **kwargs)

    def counted_generation(*args, **kwargs):
        counts["baseline_generation"] += args[-1] == "baseline"
        return generation(*args, **kwargs)

    monkeypatch.setattr(cefrtune.evaluate, "loss_metrics", counted_loss)
    monkeypatch.setattr(run_module, "_generation", counted_generation)
    return counts


def tiny_run(model_dir, out, calls, **changes) -> dict:
    for key in calls:
        calls[key] = 0
    config = load_config("smoke", {"model": model_dir, **SETTINGS, **changes})
    return json.loads((run(config, output=out) / "metrics.json").read_text())


def test_second_run_reuses_the_baseline_and_a_change_recomputes_it(model_dir, calls, tmp_path, capsys,
                                                                    baseline_cache_folder):
    first = tiny_run(model_dir, tmp_path / "first", calls)
    assert first["baseline_source"]["source"] == "computed"
    assert calls == {"loss_metrics": 3, "baseline_generation": 1}  # baseline, adapter-on-base, merged
    entry = json.loads(next(baseline_cache_folder.glob("*.json")).read_text())
    assert entry["parts"]["base_model"] == model_dir and entry["parts"]["eval_examples"] == 2
    assert entry["computed_by"] == str(tmp_path / "first")
    capsys.readouterr()

    second = tiny_run(model_dir, tmp_path / "second", calls)
    assert calls == {"loss_metrics": 2, "baseline_generation": 0}
    source = second["baseline_source"]
    assert source["source"] == "cache" and source["computed_by"] == str(tmp_path / "first")
    assert source["path"] == first["baseline_source"]["path"] and source["computed_at"] == entry["computed_at"]
    assert "baseline reused from the cache" in capsys.readouterr().out
    assert second["baseline"] == first["baseline"] and second["improvement"]
    assert "generate_baseline" not in second["peak_rss_mb_after_stage"]  # the base model was not loaded for it
    report = (tmp_path / "second" / "report.md").read_text()
    assert "come from the baseline cache" in report and str(tmp_path / "first") in report

    changed_eval = tiny_run(model_dir, tmp_path / "eval1", calls, eval_subset=1)
    assert changed_eval["baseline_source"]["source"] == "computed" and calls["baseline_generation"] == 1
    changed_setting = tiny_run(model_dir, tmp_path / "candidates1", calls, checked_candidates=1)
    assert changed_setting["baseline_source"]["source"] == "computed" and calls["baseline_generation"] == 1
    assert len(list(baseline_cache_folder.glob("*.json"))) == 3

    again = tiny_run(model_dir, tmp_path / "again", calls, baseline="recompute")
    assert again["baseline_source"]["source"] == "computed" and calls["baseline_generation"] == 1
    entry = json.loads((baseline_cache_folder / f"{first['baseline_source']['key']}.json").read_text())
    assert entry["computed_by"] == str(tmp_path / "again")  # overwritten


def test_a_corrupt_cache_entry_is_computed_again_with_a_warning(model_dir, calls, tmp_path, capsys):
    first = tiny_run(model_dir, tmp_path / "first", calls)
    path = first["baseline_source"]["path"]
    with open(path, "w") as handle:
        handle.write('{"key": "trunc')
    capsys.readouterr()
    second = tiny_run(model_dir, tmp_path / "second", calls)
    err = capsys.readouterr().err
    assert f"warning: the cached baseline {path} cannot be read" in err and "computing the baseline again" in err
    assert second["baseline_source"]["source"] == "computed" and calls["baseline_generation"] == 1
    assert json.loads(open(path).read())["computed_by"] == str(tmp_path / "second")  # repaired
    assert second["baseline"]["response_loss"] == first["baseline"]["response_loss"]


def test_skip_leaves_the_baseline_out(model_dir, calls, tmp_path, baseline_cache_folder):
    metrics = tiny_run(model_dir, tmp_path / "skip", calls, baseline="skip")
    assert calls == {"loss_metrics": 2, "baseline_generation": 0}
    assert "baseline" not in metrics and "improvement" not in metrics
    assert metrics["baseline_source"] == {"source": "skipped"} and "generation" in metrics["tuned"]
    report = (tmp_path / "skip" / "report.md").read_text()
    assert "The baseline was skipped" in report and "| metric | reference | tuned |" in report
    assert "Tuned model (no baseline)" in report
    assert "no baseline was measured" in (tmp_path / "skip" / "merged" / "README.md").read_text()
    assert not list(baseline_cache_folder.glob("*.json"))


def test_baseline_mode_is_validated():
    with pytest.raises(ConfigError, match='baseline: "cached" or "recompute" or "skip"'):
        load_config("smoke", {"baseline": "sometimes"})
