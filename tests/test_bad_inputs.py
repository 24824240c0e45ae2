"""Bad inputs through the `cefrtune` command: each one gets a clear message (what, where), the
expected exit status (2 for a user mistake, 1 where `data validate` reports problems), no
traceback, and leaves every file as it was. No model is loaded by any case.

    pytest -q tests/test_bad_inputs.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

import tiny
from cefrtune.cli import main
from cefrtune.resources import data_path

WORDS = "ev,anne,sabah,kırmızı,yağmur,mutlu,ekmek,baş,üç,uyumak"


def good_records(count: int = 2) -> list[dict]:
    return [json.loads(line) for line in data_path("a1.jsonl").read_text(encoding="utf-8").splitlines()[:count]]


def jsonl(records) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def with_sentence(text: str, index: int = 0) -> str:
    records = good_records()
    records[0]["sentences"][index] = text
    return jsonl(records)


def damaged_model(folder: Path) -> Path:
    tok = tiny.tokenizer()
    tiny.save(tiny.llama(len(tok)), tok, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


# Files each case may use, created in a fresh folder before it runs.
FILES = {
    "good.jsonl": lambda: jsonl(good_records()),
    "nine_words.jsonl": lambda: jsonl([dict(r, words=r["words"][:9], sentences=r["sentences"][:9])
                                       for r in good_records()]),
    "english.jsonl": lambda: with_sentence("My mother is very happy today."),
    "no_target.jsonl": lambda: with_sentence("Bugün hava çok güzel."),
    "html.jsonl": lambda: with_sentence("<b>Bizim</b> ev çok büyük."),
    "zero_width.jsonl": lambda: with_sentence("Bizim ev\u200b çok büyük ve aydınlık."),
    "bidi.jsonl": lambda: with_sentence("Bizim ev \u202eçok büyük ve aydınlık."),
    "line_sep.jsonl": lambda: with_sentence("Bizim ev çok\u2028büyük ve aydınlık."),
    "empty.jsonl": lambda: "",
    "blank.jsonl": lambda: "\n\n   \n",
    "empty_list.json": lambda: "[]",
    "bom_list.json": lambda: "\ufeff" + json.dumps(good_records(), ensure_ascii=False),
    "deep.json": lambda: "[" * 5000 + "]" * 5000,
    "latin1.jsonl": lambda: b'{"level": "A1", "words": ["g\xfczel"]}\n',
    "malformed.jsonl": lambda: '{"level": "A1", "words": [\n',
    "duplicates.jsonl": lambda: jsonl(good_records(1) * 30),
    "not_object.jsonl": lambda: "[1, 2, 3]\n",
    "bad_level.jsonl": lambda: jsonl([dict(r, level="Z9") for r in good_records()]),
    "bad.yaml": lambda: "lora_r: [unclosed\n",
    "list.yaml": lambda: "- 1\n- 2\n",
    "lists.json": lambda: json.dumps([WORDS.split(",")], ensure_ascii=False),
    "requests.jsonl": lambda: jsonl([{"level": "A1", "words": WORDS.split(",")}] * 2),
    "int_words.jsonl": lambda: '{"level": "A1", "words": 5}\n',
    "other_results.jsonl": lambda: '{"level": "B2", "words": ["x"], "sentences": []}\n',
    "not_a_folder": lambda: "a file\n",
    "folder/": None,
    "finished/": None,
    "foreign/": None,
    "changed/": None,
    "damaged/": None,
}


def build(folder: Path) -> None:
    for name, make in FILES.items():
        if name.endswith("/"):
            (folder / name).mkdir()
            continue
        content = make()
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    (folder / "finished" / "metrics.json").write_text("{}\n")
    (folder / "finished" / "config.yaml").write_text("level: A1\n")
    (folder / "foreign" / "notes.txt").write_text("mine\n")
    from cefrtune.config import load_config, to_dict

    (folder / "changed" / "config.yaml").write_text(yaml.safe_dump(to_dict(load_config("smoke"))))
    (folder / "changed" / "checkpoints" / "last").mkdir(parents=True)
    (folder / "changed" / "checkpoints" / "last" / "trainer_state.json").write_text('{"epoch": 1}')
    (folder / "changed" / "checkpoints" / "last" / "state.pt").write_bytes(b"x")
    damaged_model(folder / "damaged")


RUN = ["run", "--config", "smoke"]
GEN = ["generate", "--model", "damaged", "--level", "A1", "--words", WORDS]

# (id, argv, exit status, words the message must hold)
CASES = [
    # --- configuration values ---
    ("set-lr-string", RUN + ["--set", "learning_rate=abc"], 2, ["learning_rate", "finite number"]),
    ("set-lr-negative", RUN + ["--set", "learning_rate=-1e-4"], 2, ["learning_rate", "positive"]),
    ("set-lr-nan", RUN + ["--set", "learning_rate=.nan"], 2, ["learning_rate"]),
    ("set-lora-r-bool", RUN + ["--set", "lora_r=true"], 2, ["lora_r", "whole number"]),
    ("set-lora-r-float", RUN + ["--set", "lora_r=8.5"], 2, ["lora_r", "whole number"]),
    ("set-lora-r-zero", RUN + ["--set", "lora_r=0"], 2, ["lora_r", "positive"]),
    ("set-seed-negative", RUN + ["--set", "seed=-1"], 2, ["seed"]),
    ("set-seed-huge", RUN + ["--set", "seed=99999999999"], 2, ["seed"]),
    ("set-eval-fraction-text", RUN + ["--set", "eval_fraction=abc"], 2, ["eval_fraction"]),
    ("set-eval-fraction-big", RUN + ["--set", "eval_fraction=1.5"], 2, ["eval_fraction", "between 0 and 1"]),
    ("set-warmup-one", RUN + ["--set", "warmup_ratio=1"], 2, ["warmup_ratio"]),
    ("set-scheduler", RUN + ["--set", "lr_scheduler=step"], 2, ["lr_scheduler", "linear"]),
    ("set-target-modules", RUN + ["--set", "target_modules=[1, 2]"], 2, ["target_modules"]),
    ("set-max-seq-zero", RUN + ["--set", "max_seq_length=0"], 2, ["max_seq_length"]),
    ("set-unknown-field", RUN + ["--set", "lora_rank=8"], 2, ["unknown field", "lora_rank"]),
    ("set-no-equals", RUN + ["--set", "lora_r"], 2, ["FIELD=VALUE"]),
    ("set-dtype", RUN + ["--set", "train_dtype=fp16"], 2, ["train_dtype"]),
    ("set-compile-text", RUN + ["--set", "compile=maybe"], 2, ["compile"]),
    ("set-generate-int", RUN + ["--set", "generate=1"], 2, ["generate", "true or false"]),
    ("set-model-empty", RUN + ["--set", "model="], 2, ["model"]),
    ("max-steps-zero", RUN + ["--max-steps", "0"], 2, ["max_steps"]),
    ("max-steps-negative", RUN + ["--max-steps", "-3"], 2, ["max_steps"]),
    ("config-missing", ["run", "--config", "nosuch"], 2, ["no preset", "nosuch"]),
    ("config-bad-yaml", ["run", "--config", "bad.yaml"], 2, ["bad.yaml", "YAML"]),
    ("config-yaml-list", ["run", "--config", "list.yaml"], 2, ["list.yaml", "mapping"]),
    ("level-unknown", RUN + ["--level", "X9"], 2, ["level"]),
    ("levels-unknown", RUN + ["--level", "A1,X9"], 2, ["X9"]),
    # --- datasets given to run (refused before any model loads) ---
    ("data-missing", RUN + ["--data", "nosuch.jsonl"], 2, ["nosuch.jsonl", "does not exist"]),
    ("data-folder", RUN + ["--data", "folder"], 2, ["folder", "not a file"]),
    ("data-nine-words", RUN + ["--data", "nine_words.jsonl"], 2, ["nine_words.jsonl:1", "expected 10"]),
    ("data-english", RUN + ["--data", "english.jsonl"], 2, ["english.jsonl:1", "English"]),
    ("data-no-target", RUN + ["--data", "no_target.jsonl"], 2, ["no_target.jsonl:1", "target word"]),
    ("data-html", RUN + ["--data", "html.jsonl"], 2, ["html.jsonl:1"]),
    ("data-zero-width", RUN + ["--data", "zero_width.jsonl"], 2, ["U+200B ZERO WIDTH SPACE"]),
    ("data-bidi", RUN + ["--data", "bidi.jsonl"], 2, ["U+202E RIGHT-TO-LEFT OVERRIDE"]),
    ("data-empty", RUN + ["--data", "empty.jsonl"], 2, ["empty.jsonl", "no example"]),
    ("data-latin1", RUN + ["--data", "latin1.jsonl"], 2, ["latin1.jsonl:1", "UTF-8"]),
    ("data-malformed", RUN + ["--data", "malformed.jsonl"], 2, ["malformed.jsonl:1", "JSON"]),
    ("data-duplicates", RUN + ["--data", "duplicates.jsonl"], 2, ["duplicate"]),
    ("data-deep", RUN + ["--data", "deep.json"], 2, ["deep.json", "nested"]),
    ("data-other-level", RUN + ["--data", "bad_level.jsonl"], 2, ["bad_level.jsonl:1", "Z9"]),
    # --- run folders ---
    ("output-is-file", RUN + ["--output", "not_a_folder"], 2, ["not_a_folder", "is a file"]),
    ("output-foreign", RUN + ["--output", "foreign"], 2, ["foreign", "notes.txt"]),
    ("output-finished", RUN + ["--output", "finished"], 2, ["finished", "already holds a run"]),
    ("resume-finished", RUN + ["--output", "finished", "--resume"], 2, ["finished", "nothing to resume"]),
    ("resume-no-output", RUN + ["--resume"], 2, ["--resume needs --output"]),
    ("resume-no-checkpoint", RUN + ["--output", "folder", "--resume"], 2, ["no checkpoint", "without --resume"]),
    ("resume-changed-config", RUN + ["--output", "changed", "--resume", "--set", "lora_r=16"], 2, ["lora_r: 8 -> 16"]),
    ("resume-levels", RUN + ["--level", "A1,B1", "--resume"], 2, ["--resume"]),
    # --- data commands ---
    ("validate-missing", ["data", "validate", "nosuch.jsonl"], 1, ["nosuch.jsonl", "no such file"]),
    ("validate-folder", ["data", "validate", "folder"], 1, ["folder", "not a regular file"]),
    ("validate-empty", ["data", "validate", "empty.jsonl"], 1, ["empty.jsonl:1", "empty_file"]),
    ("validate-blank", ["data", "validate", "blank.jsonl"], 1, ["empty_file"]),
    ("validate-empty-list", ["data", "validate", "empty_list.json"], 1, ["empty_file"]),
    ("validate-line-separator", ["data", "validate", "line_sep.jsonl"], 1, ["U+2028 LINE SEPARATOR"]),
    ("validate-deep", ["data", "validate", "deep.json"], 1, ["nested too deeply"]),
    ("validate-latin1", ["data", "validate", "latin1.jsonl"], 1, ["latin1.jsonl:1", "UTF-8"]),
    ("validate-not-object", ["data", "validate", "not_object.jsonl"], 1, ["JSON object"]),
    ("validate-english", ["data", "validate", "english.jsonl"], 1, ["not_turkish"]),
    ("validate-n-zero", ["data", "validate", "good.jsonl", "--n", "0"], 2, ["--n"]),
    ("stats-missing", ["data", "stats", "nosuch.jsonl"], 2, ["nosuch.jsonl", "no such file"]),
    ("stats-folder", ["data", "stats", "folder"], 2, ["folder", "not a regular file"]),
    ("split-missing", ["data", "split", "nosuch.jsonl", "--out", "out"], 2, ["nosuch.jsonl"]),
    ("split-fraction", ["data", "split", "good.jsonl", "--out", "out", "--eval-fraction", "2"], 2, ["eval_fraction"]),
    ("split-malformed", ["data", "split", "malformed.jsonl", "--out", "out"], 2, ["malformed.jsonl:1"]),
    ("split-out-is-file", ["data", "split", "good.jsonl", "--out", "not_a_folder"], 2, ["not_a_folder"]),
    ("levels-missing", ["data", "levels", "nosuch.jsonl"], 2, ["nosuch.jsonl"]),
    # --- generation requests and options (all checked before the model loads) ---
    ("gen-nine-words", GEN[:-1] + ["ev,su,okul,kitap,elma,kedi,araba,anne,güzel"], 2, ["9 words, expected 10"]),
    ("gen-no-level", GEN[:3] + ["--words", WORDS], 2, ["unknown level"]),
    ("gen-bad-level", GEN[:3] + ["--level", "D1", "--words", WORDS], 2, ["'D1'"]),
    ("gen-digit-word", GEN[:-1] + ["ev2,anne,sabah,kırmızı,yağmur,mutlu,ekmek,baş,üç,uyumak"], 2, ["ev2"]),
    ("gen-nothing", GEN[:5], 2, ["--words"]),
    ("gen-max-new-negative", GEN + ["--max-new-tokens", "-1"], 2, ["--max-new-tokens"]),
    ("gen-max-new-zero", GEN + ["--max-new-tokens", "0"], 2, ["--max-new-tokens"]),
    ("gen-temperature-negative", GEN + ["--sample", "--temperature", "-1"], 2, ["--temperature"]),
    ("gen-temperature-zero", GEN + ["--sample", "--temperature", "0"], 2, ["--temperature"]),
    ("gen-temperature-nan", GEN + ["--sample", "--temperature", "nan"], 2, ["--temperature"]),
    ("gen-top-p-zero", GEN + ["--top-p", "0"], 2, ["--top-p"]),
    ("gen-top-p-big", GEN + ["--top-p", "1.5"], 2, ["--top-p"]),
    ("gen-candidates-zero", GEN + ["--checked", "--candidates", "0"], 2, ["--candidates"]),
    ("gen-attempts-negative", GEN + ["--checked", "--attempts", "-1"], 2, ["--attempts"]),
    ("gen-batch-zero", GEN + ["--batch-size", "0"], 2, ["--batch-size"]),
    ("gen-seed-negative", GEN + ["--seed", "-1"], 2, ["--seed"]),
    ("gen-input-missing", GEN[:3] + ["--input", "nosuch.json"], 2, ["nosuch.json", "no such file"]),
    ("gen-input-folder", GEN[:3] + ["--input", "folder"], 2, ["folder", "not a regular file"]),
    ("gen-input-malformed", GEN[:3] + ["--input", "malformed.jsonl"], 2, ["malformed.jsonl:1"]),
    ("gen-input-empty", GEN[:3] + ["--input", "empty.jsonl"], 2, ["empty.jsonl"]),
    ("gen-bare-list-no-level", GEN[:3] + ["--input", "lists.json"], 2, ["needs --level"]),
    ("gen-words-not-list", GEN[:3] + ["--input", "int_words.jsonl"], 2, ["int_words.jsonl:1", "list of words"]),
    ("gen-output-is-input", GEN[:3] + ["--input", "requests.jsonl", "--output", "requests.jsonl"], 2,
     ["is the --input"]),
    ("gen-output-folder", GEN[:3] + ["--input", "requests.jsonl", "--output", "folder"], 2, ["is a folder"]),
    ("gen-output-no-parent", GEN[:3] + ["--input", "requests.jsonl", "--output", "no/such/out.jsonl"], 2,
     ["does not exist"]),
    ("gen-output-other", GEN[:3] + ["--input", "requests.jsonl", "--output", "other_results.jsonl"], 2,
     ["other_results.jsonl:1", "another --output"]),
    # --- models ---
    ("gen-damaged-model", GEN, 2, ["damaged", "model.safetensors", "truncated"]),
    ("eval-damaged-model", ["eval", "--model", "damaged", "--data", "good.jsonl"], 2, ["damaged", "truncated"]),
    # --- export ---
    ("export-missing", ["export", "nosuch", "--gguf"], 2, ["nosuch", "neither a run folder"]),
    ("export-folder-no-model", ["export", "folder", "--gguf"], 2, ["folder", "neither a run folder"]),
]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-inputs")
    build(folder)
    return folder


@pytest.mark.parametrize("name,argv,status,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_clearly_and_changes_nothing(name, argv, status, words, prepared, tmp_path, monkeypatch,
                                                          capsys):
    work = tmp_path / "work"
    shutil.copytree(prepared, work, symlinks=True)
    monkeypatch.chdir(work)
    from transformers import AutoModelForCausalLM

    def no_model(*args, **kwargs):
        raise AssertionError("a bad input reached the model")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_model)
    before = snapshot(work)
    assert main(argv) == status
    captured = capsys.readouterr()
    printed = captured.err + captured.out
    assert "Traceback" not in printed
    for word in words:
        assert word in printed, f"{word!r} not in: {printed}"
    if status == 2:
        message = captured.err.strip().splitlines()
        assert message and message[0].startswith("cefrtune: "), captured.err
    assert snapshot(work) == before, "a refused command changed files"


def test_case_count():
    assert len(CASES) >= 60


def test_bom_json_list_is_read(prepared, capsys):
    assert main(["data", "validate", str(prepared / "bom_list.json")]) == 0
    assert "2 examples" in capsys.readouterr().out
