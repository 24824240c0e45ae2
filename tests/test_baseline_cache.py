"""The baseline cache (cefrtune.baseline_cache) through `cefrtune.run.run` on a tiny local model: a
second run with the same base model, eval set and settings reuses the first run's baseline without
evaluating or generating with the base model; a changed eval set or setting, `recompute` and a
corrupt cache entry compute it again; `skip` leaves the baseline out of metrics, report and card."""

import json
from pathlib import Path

import pytest

import tiny
from cefrtune import run as run_module
from cefrtune.config import ConfigError, load_config
from cefrtune.run import run

SETTINGS = {"train_dtype": "fp32", "max_new_tokens": 12, "checked_attempts": 1, "max_seq_length": 1024,
            "generation_batch_size": 16}


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


@pytest.fixture(scope="module")
def split():
    """Four training and two eval examples of the shipped A1 data (given to the run directly: the
    whole dataset's validation would take minutes)."""
    from cefrtune.config import RunConfig
    from cefrtune.examples import load_examples

    examples = load_examples(RunConfig(level="A1").data_path())[:6]
    return examples[:4], examples[4:]


def tiny_run(model_dir, split, out, calls, **changes) -> dict:
    for key in calls:
        calls[key] = 0
    config = load_config("smoke", {"model": model_dir, **SETTINGS, **changes})
    return json.loads((run(config, output=out, split=split) / "metrics.json").read_text())


def test_a_second_run_reuses_the_baseline_and_a_change_recomputes_it(model_dir, split, calls, tmp_path, capsys,
                                                                      baseline_cache_folder):
    first = tiny_run(model_dir, split, tmp_path / "first", calls)
    assert first["baseline_source"]["source"] == "computed"
    assert calls == {"loss_metrics": 3, "baseline_generation": 1}  # baseline, adapter-on-base, merged
    entry = json.loads(next(baseline_cache_folder.glob("*.json")).read_text())
    assert entry["parts"]["base_model"] == model_dir and entry["parts"]["eval_examples"] == 2
    assert entry["computed_by"] == str(tmp_path / "first")
    capsys.readouterr()

    second = tiny_run(model_dir, split, tmp_path / "second", calls)
    assert calls == {"loss_metrics": 2, "baseline_generation": 0}
    source = second["baseline_source"]
    assert source["source"] == "cache" and source["computed_by"] == str(tmp_path / "first")
    assert source["path"] == first["baseline_source"]["path"] and source["computed_at"] == entry["computed_at"]
    assert "baseline reused from the cache" in capsys.readouterr().out
    assert second["baseline"] == first["baseline"] and second["improvement"]
    assert "generate_baseline" not in second["peak_rss_mb_after_stage"]  # the base model was not loaded for it
    report = (tmp_path / "second" / "report.md").read_text()
    assert "come from the baseline cache" in report and str(tmp_path / "first") in report

    changed_eval = tiny_run(model_dir, split, tmp_path / "eval1", calls, eval_subset=1)
    assert changed_eval["baseline_source"]["source"] == "computed" and calls["baseline_generation"] == 1
    changed_setting = tiny_run(model_dir, split, tmp_path / "unchecked", calls, checked_attempts=0)
    assert changed_setting["baseline_source"]["source"] == "computed" and calls["baseline_generation"] == 1
    assert len(list(baseline_cache_folder.glob("*.json"))) == 3

    again = tiny_run(model_dir, split, tmp_path / "again", calls, baseline="recompute")
    assert again["baseline_source"]["source"] == "computed" and calls["baseline_generation"] == 1
    path = first["baseline_source"]["path"]
    assert json.loads(open(path).read())["computed_by"] == str(tmp_path / "again")  # overwritten

    with open(path, "w") as handle:  # a corrupt entry: computed again, with a warning, and repaired
        handle.write('{"key": "trunc')
    capsys.readouterr()
    repaired = tiny_run(model_dir, split, tmp_path / "repaired", calls)
    err = capsys.readouterr().err
    assert f"warning: the cached baseline {path} cannot be read" in err and "computing the baseline again" in err
    assert repaired["baseline_source"]["source"] == "computed" and calls["baseline_generation"] == 1
    assert json.loads(open(path).read())["computed_by"] == str(tmp_path / "repaired")
    assert repaired["baseline"]["response_loss"] == first["baseline"]["response_loss"]


def test_skip_leaves_the_baseline_out(model_dir, split, calls, tmp_path, baseline_cache_folder):
    metrics = tiny_run(model_dir, split, tmp_path / "skip", calls, baseline="skip")
    assert calls == {"loss_metrics": 2, "baseline_generation": 0}
    assert "baseline" not in metrics and "improvement" not in metrics
    assert metrics["baseline_source"] == {"source": "skipped"} and "generation" in metrics["tuned"]
    report = (tmp_path / "skip" / "report.md").read_text()
    assert "The baseline was skipped" in report and "| metric | reference | tuned |" in report
    assert "Tuned model (no baseline)" in report
    assert "no baseline was measured" in (tmp_path / "skip" / "merged" / "README.md").read_text()
    assert not list(baseline_cache_folder.glob("*.json"))


@pytest.mark.parametrize("change", [{"seed": 7}, {"generation_batch_size": 8}, {"checked_candidates": 1},
                                    {"generation_dtype": "fp32"}, {"per_device_eval_batch_size": 4},
                                    {"model": "other"}])
def test_every_setting_the_baseline_depends_on_is_in_its_key(split, change):
    from cefrtune.baseline_cache import key_parts
    from cefrtune.models import ResolvedModel
    from cefrtune.prompts import PromptStyle

    resolved = ResolvedModel(Path("."), "m", "embedded-gguf", "f" * 64)
    style = PromptStyle("plain")
    sentences = [s for e in split[0] for s in e.sentences]
    parts = key_parts(load_config("smoke"), resolved, style, split[1], sentences, 40)
    assert parts == key_parts(load_config("smoke"), resolved, style, split[1], sentences, 40)
    assert parts != key_parts(load_config("smoke", change), resolved, style, split[1], sentences, 40)
    assert parts != key_parts(load_config("smoke"), resolved, style, split[1][:1], sentences, 40)  # eval set
    assert parts != key_parts(load_config("smoke"), resolved, style, split[1], sentences[1:], 40)  # train sentences
    assert parts != key_parts(load_config("smoke"), resolved, style, split[1], sentences, 41)  # max_new_tokens
    assert parts != key_parts(load_config("smoke"), resolved, PromptStyle("plain", name_words=True), split[1],
                              sentences, 40)
    assert parts != key_parts(load_config("smoke"), ResolvedModel(Path("."), "m", "embedded-gguf", "e" * 64), style,
                              split[1], sentences, 40)


def test_baseline_mode_is_validated():
    with pytest.raises(ConfigError, match='baseline: "cached" or "recompute" or "skip"'):
        load_config("smoke", {"baseline": "sometimes"})
