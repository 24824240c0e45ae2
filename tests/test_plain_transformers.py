"""A run's merged/ outside cefrtune: plain transformers loads it, renders a request with the
saved chat template, generates greedily with the saved generation config, and the answer ends by
itself before the token limit; the model card's own code example runs as written; exported to GGUF,
llama.cpp applies the file's own chat template and its greedy answer is a list of ten that ends by itself.

A short real run on the embedded model (the smoke preset, trained long enough to learn the list
and its end: 32 examples, 3 epochs); minutes, marked slow.
"""

import json
import subprocess
import sys

import pytest

from cefrtune.cli import main

WORDS = ["ev", "su", "okul", "kitap", "elma", "kedi", "araba", "anne", "güzel", "gitmek"]

# Run in a fresh interpreter: nothing from cefrtune is imported or patched.
PLAIN = r"""
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, message = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder)
inputs = tokenizer.apply_chat_template([{"role": "user", "content": message}], add_generation_prompt=True,
                                       return_tensors="pt", return_dict=True)
output = model.generate(**inputs)[0, inputs["input_ids"].shape[1]:].tolist()
stops = model.generation_config.eos_token_id
print(json.dumps({"tokens": output, "stops": stops, "limit": model.generation_config.max_new_tokens,
                  "text": tokenizer.decode(output, skip_special_tokens=True),
                  "cefrtune_imported": any(name.startswith("cefrtune") for name in sys.modules)}))
"""


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain") / "run"
    assert (
        main(
            [
                "run",
                "--config",
                "smoke",
                "--output",
                str(out),
                "--set",
                "train_subset=32",
                "--set",
                "num_train_epochs=3",
                "--set",
                "per_device_train_batch_size=4",
                "--set",
                "gradient_accumulation_steps=1",
                "--set",
                "learning_rate=1e-3",
                "--set",
                "generate=false",
            ]
        )
        == 0
    )
    return out


@pytest.mark.slow
def test_plain_transformers_answer_ends_by_itself(trained_run):
    from cefrtune.prompts import PromptStyle, parse_numbered

    style = PromptStyle.load(trained_run / "merged")
    message = style.user_message("A1", WORDS)
    done = subprocess.run(
        [sys.executable, "-c", PLAIN, str(trained_run / "merged"), message], capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert not result["cefrtune_imported"]
    tokens = result["tokens"]
    assert tokens[-1] in result["stops"] and len(tokens) < result["limit"], result["text"][-200:]
    assert parse_numbered(result["text"], 10, style, WORDS).format_valid, result["text"]


@pytest.mark.slow
def test_model_card_example_runs_as_written(trained_run):
    card = (trained_run / "merged" / "README.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace('folder = "."', f"folder = {str(trained_run / 'merged')!r}")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "1." in done.stdout


@pytest.mark.slow
def test_llama_cpp_answer_from_the_gguf_ends_by_itself(trained_run):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is built by scripts/setup.sh")
    from cefrtune.export import export
    from cefrtune.prompts import PromptStyle, parse_numbered

    style = PromptStyle.load(trained_run / "merged")
    limit = json.loads((trained_run / "merged" / "generation_config.json").read_text())["max_new_tokens"]
    llm = llama_cpp.Llama(model_path=export(trained_run, quant="f16")["gguf"], n_ctx=1024, n_threads=2, verbose=False)
    # greedy, as the saved generation config decodes: no repeat penalty (llama.cpp's default is 1.1)
    reply = llm.create_chat_completion(
        messages=[{"role": "user", "content": style.user_message("A1", WORDS)}],
        max_tokens=limit, temperature=0.0, top_k=1, repeat_penalty=1.0,
    )
    choice = reply["choices"][0]
    text = choice["message"]["content"]
    assert choice["finish_reason"] == "stop" and reply["usage"]["completion_tokens"] < limit, text[-200:]
    assert parse_numbered(text, 10, style, WORDS).format_valid, text
