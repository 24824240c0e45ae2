"""Safety of what cefrtune reads back: checkpoints never run pickled code and must match the
run's configuration, folder replacement survives a kill at any step, damaged model files are
detected, and the readers never fail on arbitrary input except with their own error.

    pytest -q tests/test_safety.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tiny
from cefrtune import files as files_module
from cefrtune.errors import CheckpointError, UserError
from cefrtune.examples import DataError, read_records
from cefrtune.files import atomic_folder, recover_folder
from cefrtune.generation import RequestError, check_request


class Payload:
    """Unpickling this runs `touch <marker>`: what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def lora_parts(tok):
    from peft import LoraConfig, get_peft_model

    from cefrtune.train import _scheduler

    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(tiny.llama(len(tok)), lora)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    return model, optimizer, _scheduler(optimizer, "linear", 1, 10)


def test_a_crafted_pickle_in_a_checkpoint_is_refused_and_not_run(tok, tmp_path):
    from cefrtune.train import _load_checkpoint, _save_checkpoint

    model, optimizer, scheduler = lora_parts(tok)
    folder = tmp_path / "checkpoints" / "last"
    _save_checkpoint(folder, model, optimizer, scheduler, {"epoch": 1, "global_step": 2})
    assert _load_checkpoint(folder, model, optimizer, scheduler)["epoch"] == 1  # a real checkpoint loads
    marker = tmp_path / "owned"
    crafted = {"model": {}, "optimizer": Payload(marker), "scheduler": {}, "rng": torch.get_rng_state()}
    torch.save(crafted, folder / "state.pt")
    with pytest.raises(CheckpointError, match="refused"):
        _load_checkpoint(folder, model, optimizer, scheduler)
    assert not marker.exists()


def test_a_checkpoint_of_another_configuration_is_refused_by_field(tok, tmp_path):
    from cefrtune.config import RunConfig, to_dict
    from cefrtune.train import _load_checkpoint, _save_checkpoint

    model, optimizer, scheduler = lora_parts(tok)
    folder = tmp_path / "last"
    _save_checkpoint(folder, model, optimizer, scheduler, {"epoch": 1, "config": to_dict(RunConfig(lora_r=4))})
    with pytest.raises(CheckpointError, match="lora_r: 4 -> 16"):
        _load_checkpoint(folder, model, optimizer, scheduler, RunConfig(lora_r=16))
    # generation settings may change on resume
    _load_checkpoint(folder, model, optimizer, scheduler, RunConfig(lora_r=4, checked_attempts=0))
    # tensors of another shape are named, not a size-mismatch traceback
    other, _, _ = lora_parts(tok)
    for p in other.parameters():
        p.requires_grad_(False)
    with pytest.raises(CheckpointError, match="does not fit"):
        _load_checkpoint(folder, tiny.llama(len(tok)), optimizer, scheduler)


def test_resume_of_a_finished_run_changes_no_byte(tmp_path, capsys):
    import yaml

    from cefrtune.cli import main
    from cefrtune.config import load_config, to_dict

    run = tmp_path / "run"
    files = {"config.yaml": yaml.safe_dump(to_dict(load_config("smoke"))), "metrics.json": '{"level": "A1"}\n',
             "report.md": "# report\n", "data/training_data_a1_list_format_eval.json": "[]\n",
             "checkpoints/last/trainer_state.json": '{"epoch": 2}', "checkpoints/last/state.pt": "x",
             "adapter/adapter_model.safetensors": "w", "merged/model.safetensors": "m"}
    for name, text in files.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}
    for extra in ([], ["--set", "eval_fraction=0.5"]):
        assert main(["run", "--config", "smoke", "--output", str(run), "--resume", *extra]) == 2
        assert "finished run" in capsys.readouterr().err
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()} == before


def test_a_folder_left_by_a_failed_run_is_reused_and_default_names_never_collide(tmp_path, monkeypatch):
    from cefrtune.config import RunConfig
    from cefrtune.run import RunFolderError, _check_run_dir, _make_run_dir

    failed = tmp_path / "failed"
    (failed / "data").mkdir(parents=True)
    (failed / "config.yaml").write_text("level: A1\n")
    (failed / "tensorboard").mkdir()
    (failed / ".adapter-x1y2").mkdir()
    with pytest.raises(RunFolderError, match="without --resume"):
        _check_run_dir(RunConfig(), failed, resume=True)
    assert _make_run_dir(_check_run_dir(RunConfig(), failed, resume=False), False) == failed
    assert list(failed.iterdir()) == []  # what the failed run wrote is gone; nothing else was there
    (failed / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match="notes.txt"):
        _check_run_dir(RunConfig(), failed, resume=False)
    monkeypatch.chdir(tmp_path)
    first = _make_run_dir(_check_run_dir(RunConfig(), None, False), True)
    second = _make_run_dir(first, True)  # the same second
    assert first != second and first.is_dir() and second.is_dir() and second.name == first.name + "-2"


def test_resume_with_the_saved_configuration_is_accepted(tmp_path):
    import yaml

    from cefrtune.config import load_config, to_dict
    from cefrtune.run import RunFolderError, _check_run_dir

    run = tmp_path / "run"
    (run / "checkpoints" / ".last.old").mkdir(parents=True)  # killed between the renames of a save
    (run / "checkpoints" / ".last.old" / "trainer_state.json").write_text('{"epoch": 1}')
    config = load_config("smoke", {"learning_rate": "1e-4", "max_steps": 3})
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(config), allow_unicode=True, sort_keys=False))
    same = load_config("smoke", {"learning_rate": 1e-4, "max_steps": 3, "checked_attempts": 0})
    assert _check_run_dir(same, run, True)
    assert (run / "checkpoints" / "last" / "trainer_state.json").exists()  # put back before the check
    with pytest.raises(RunFolderError, match="max_steps: 3 -> None"):
        _check_run_dir(load_config("smoke", {"learning_rate": 1e-4}), run, True)


# ---- folder replacement killed at each step ---------------------------------------------------


class Killed(BaseException):
    pass


def write_version(folder: Path, version: str) -> None:
    (folder / "state.pt").write_text(version)
    (folder / "trainer_state.json").write_text(json.dumps({"version": version}))


@pytest.mark.parametrize("swap", ["exchange", "two renames"])
@pytest.mark.parametrize("kill_at", [0, 1, 2, 3])
def test_a_kill_during_folder_replacement_leaves_a_whole_folder(tmp_path, monkeypatch, swap, kill_at):
    target = tmp_path / "last"
    with atomic_folder(target) as tmp:
        write_version(tmp, "old")
    if swap == "two renames":
        monkeypatch.setattr(files_module, "_exchange", lambda a, b: False)
    calls = []
    real_replace, real_exchange = files_module.os.replace, files_module._exchange

    def step(function):
        def wrapped(*args):
            calls.append(function)
            if len(calls) > kill_at:
                raise Killed()  # the process dies before this step
            return function(*args)
        return wrapped

    monkeypatch.setattr(files_module.os, "replace", step(real_replace))
    monkeypatch.setattr(files_module, "_exchange", step(files_module._exchange))
    try:
        with atomic_folder(target) as tmp:
            write_version(tmp, "new")
    except Killed:
        pass
    monkeypatch.setattr(files_module.os, "replace", real_replace)
    monkeypatch.setattr(files_module, "_exchange", real_exchange)
    recover_folder(target)  # what a resume does first
    version = json.loads((target / "trainer_state.json").read_text())["version"]
    assert (target / "state.pt").read_text() == version
    assert version in ("old", "new")  # one whole version, never none or a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # no leftover blocks a later save
    with atomic_folder(target) as tmp:
        write_version(tmp, "next")
    assert json.loads((target / "trainer_state.json").read_text())["version"] == "next"


def test_a_kill_between_the_renames_of_a_checkpoint_still_resumes(tok, examples, tmp_path, monkeypatch):
    """Training dies between the two renames of epoch 2's checkpoint (no `last` on disk): the
    resume puts epoch 1's back and gives the adapter of an uninterrupted run."""
    from safetensors.torch import load_file

    import cefrtune.train as train_module
    from cefrtune.config import RunConfig

    config = RunConfig(num_train_epochs=2, per_device_train_batch_size=2, gradient_accumulation_steps=1, lora_r=4,
                       lora_alpha=8, train_dtype="fp32", compile=False, early_stopping_patience=None,
                       max_seq_length=256)

    def train(folder, resume=False):
        return train_module.train(config, examples[:6], examples[6:], tmp_path / folder, resume=resume,
                                  model=tiny.llama(len(tok)), tokenizer=tok)

    full = train("full")
    monkeypatch.setattr(files_module, "_exchange", lambda a, b: False)
    real_replace, saves = files_module.os.replace, []

    def dying_replace(a, b):
        if Path(b).name == ".last.old":
            saves.append(b)
            if len(saves) == 1:  # epoch 2's checkpoint: `last` moved aside, then the process dies
                real_replace(a, b)
                raise Killed()
        return real_replace(a, b)

    monkeypatch.setattr(files_module.os, "replace", dying_replace)
    with pytest.raises(Killed):
        train("cut")
    monkeypatch.setattr(files_module.os, "replace", real_replace)
    assert not (tmp_path / "cut" / "checkpoints" / "last").exists()
    resumed = train("cut", resume=True)
    a = load_file(tmp_path / "full" / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "cut" / "adapter" / "adapter_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    assert resumed.best_eval_loss == pytest.approx(full.best_eval_loss, rel=1e-6)


def test_replaced_folders_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_folder(tmp_path / "out") as tmp:
            (tmp / "f").write_text("x")
            os.chmod(tmp / "f", 0o600)
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out" / "f").stat().st_mode & 0o777 == 0o644


# ---- damaged model files ----------------------------------------------------------------------


def test_a_truncated_or_changed_model_file_is_detected(tok, tmp_path):
    from cefrtune.models import verify_folder, write_manifest

    folder = Path(tiny.save(tiny.llama(len(tok)), tok, tmp_path / "model"))
    write_manifest(folder)
    assert verify_folder(folder) == []
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # same size, one layer overwritten
    weights.write_bytes(bytes(data))
    assert any("sha256" in p for p in verify_folder(folder))
    weights.write_bytes(bytes(data[: len(data) // 2]))
    problems = verify_folder(folder)
    assert any("truncated" in p for p in problems) and any("bytes" in p for p in problems)


def test_an_unchanged_file_is_not_hashed_again(tok, tmp_path, monkeypatch):
    from cefrtune import models

    folder = Path(tiny.save(tiny.llama(len(tok)), tok, tmp_path / "model"))
    models.write_manifest(folder)
    monkeypatch.setattr(models, "sha256_file", lambda path: pytest.fail("hashed an unchanged file"))
    assert models.verify_folder(folder) == []


# ---- fuzzing the readers -------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                              lambda inner: st.lists(inner, max_size=4)
                              | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                              max_leaves=20).map(lambda v: json.dumps(v, ensure_ascii=False))))
def test_reader_fuzz_only_raises_its_own_error(tmp_path, content):
    from cefrtune.examples import parse_record

    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    try:
        records, problems = read_records(path)
    except DataError:
        return
    for origin, record in records:
        example, record_problems = parse_record(record, origin, 10)
        assert (example is None) == bool(record_problems)
    assert records or problems


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=4), st.none(), st.integers()),
       st.one_of(st.lists(st.one_of(st.text(max_size=12), st.integers(), st.none()), max_size=12), st.text(max_size=5),
                 st.integers()))
def test_request_checker_fuzz_accepts_or_says_why(level, words):
    try:
        request = check_request(level, words, 10)
    except RequestError as err:
        assert str(err)
        return
    assert request.level == level and len(request.words) == 10


def test_user_errors_share_one_base():
    from cefrtune.config import ConfigError
    from cefrtune.models import DamagedModel, ModelNotFound

    for error in (ConfigError, DataError, RequestError, CheckpointError, ModelNotFound, DamagedModel):
        assert issubclass(error, UserError)


def test_generate_writes_as_it_goes_and_continues_a_stopped_file(tok, tmp_path, monkeypatch, capsys):
    import cefrtune.generate as generate_module
    from cefrtune.cli import main

    model_dir = tiny.save(tiny.llama(len(tok)), tok, tmp_path / "model")
    words = ["ev", "anne", "sabah", "kırmızı", "yağmur", "mutlu", "ekmek", "baş", "üç", "uyumak"]
    requests = tmp_path / "lists.json"
    requests.write_text(json.dumps([words, words[::-1], words[1:] + words[:1]], ensure_ascii=False))
    before = requests.read_bytes()
    out = tmp_path / "out.jsonl"
    args = ["generate", "--model", model_dir, "--level", "A1", "--input", str(requests), "--output", str(out),
            "--max-new-tokens", "4", "--batch-size", "1"]
    real = generate_module.generate_lists
    calls = []

    def stop_after_first(*a, **k):
        calls.append(len(a[3]))
        if len(calls) == 2:
            raise KeyboardInterrupt  # stopped after the first chunk was written
        return real(*a, **k)

    monkeypatch.setattr(generate_module, "generate_lists", stop_after_first)
    monkeypatch.setattr(generate_module, "RESULTS_CHUNK", 1)  # one word list a chunk
    assert main(args) == 130
    first = out.read_text().splitlines()
    assert len(first) == 1 and json.loads(first[0])["words"] == words
    with out.open("a") as handle:
        handle.write('{"level": "A1", "wor')  # a torn last line, as a kill leaves it
    calls.clear()
    monkeypatch.setattr(generate_module, "generate_lists", real)
    assert main(args) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and lines[0] == first[0] and [json.loads(line)["words"] for line in lines][1] == words[::-1]
    assert "holds 1 of 3" in capsys.readouterr().err
    assert requests.read_bytes() == before
    assert main(args) == 0 and "already holds all 3" in capsys.readouterr().out
