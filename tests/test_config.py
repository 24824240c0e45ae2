"""Every shipped preset parses and validates; every problem is listed at once."""


import pytest

from cefrtune.config import ConfigError, load_config
from cefrtune.resources import preset_dir

PRESETS = sorted(preset_dir().glob("*.yaml"))
ACCELERATE = sorted((preset_dir() / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_parses(path):
    config = load_config(path.stem)
    assert (
        path.read_text().startswith("#")
        and "cefrtune run" in path.read_text().splitlines()[1] + path.read_text().splitlines()[2]
    )
    assert config.level == "A1"


def test_seed_preset_is_the_seed():
    c = load_config("a1-seed")
    assert (
        c.max_seq_length,
        c.per_device_train_batch_size,
        c.gradient_accumulation_steps,
        c.learning_rate,
        c.num_train_epochs,
        c.warmup_ratio,
        c.lora_r,
        c.lora_alpha,
        c.target_modules,
    ) == (512, 16, 4, 2e-4, 10, 0.1, 128, 256, "all-linear")
    assert c.model == "gemma-3-270m" and c.loss_on == "full" and c.max_examples == 180  # the seed's data and objective
    assert load_config("llama-3.2-1b-a1-seed").model == "meta-llama/Llama-3.2-1B-Instruct"


def test_default_preset_trains_on_the_answer():
    from cefrtune.config import DEFAULT_PRESET

    c = load_config(DEFAULT_PRESET)
    assert DEFAULT_PRESET == "a1" and c.loss_on == "response" and c.max_examples is None


def test_all_problems_listed_at_once():
    with pytest.raises(ConfigError) as err:
        load_config("smoke", {"level": "D1", "learning_rate": -1, "loss_on": "all", "lora_r": 0})
    message = str(err.value)
    assert "4 problem(s)" in message
    for field in ("level", "learning_rate", "loss_on", "lora_r"):
        assert f"{field}:" in message


def test_unknown_field_is_named():
    with pytest.raises(ConfigError, match="unknown field.*lora_rank"):
        load_config("smoke", {"lora_rank": 8})


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.stem)
def test_accelerate_configs_parse(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.num_processes >= 2
    assert "accelerate launch --config_file src/cefrtune/configs/accelerate/" in path.read_text()


def test_an_explicit_null_overrides_the_preset():
    assert load_config("smoke").train_subset == 4
    assert load_config("smoke", {"train_subset": None, "early_stopping_patience": None}).train_subset is None
    assert load_config("smoke", {"early_stopping_patience": None}).early_stopping_patience is None


def test_every_field_has_a_doc_and_cefrtune_config_lists_it(capsys):
    from dataclasses import fields

    from cefrtune.cli import main
    from cefrtune.config import RunConfig, field_docs
    from cefrtune.resources import presets

    docs = field_docs()
    assert set(docs) == {f.name for f in fields(RunConfig)}
    assert [name for name, doc in docs.items() if len(doc.split()) < 3] == []
    assert main(["config"]) == 0
    listed = capsys.readouterr().out
    for name in presets():
        assert f"\n  {name} " in listed
    assert "smoke                  A few steps on a small subset" in listed
    for f in fields(RunConfig):
        assert f"\n  {f.name}: {f.type} = " in listed
    assert "  lora_r: int = 128\n      LoRA rank:" in listed
    assert "  data: str | None = null\n      Dataset file (JSONL or JSON list).\n" in listed


def test_run_help_points_to_cefrtune_config(capsys):
    from cefrtune.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "`cefrtune config` lists the presets" in capsys.readouterr().out


def test_device_is_checked_before_any_model_loads(monkeypatch):
    import torch

    from cefrtune.models import pick_device

    with pytest.raises(ConfigError, match=r'device: "auto" or "cpu" or "cuda" \(got \'gpu\'\)'):
        load_config("smoke", {"device": "gpu"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"device: torch sees no GPU here .* use \"auto\" or \"cpu\""):
        load_config("smoke", {"device": "cuda"})
    assert pick_device("auto") == torch.device("cpu") and load_config("smoke", {"device": "cpu"}).device == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")
