"""GGUF export: the file's metadata and tensors, llama.cpp running it like transformers, the Modelfile.

A tiny Gemma-3 with the embedded tokenizer's vocabulary (random weights) stands in for a run's
merged model; llama.cpp (llama-cpp-python, built by scripts/setup.sh) loads the exported file.
"""

import json

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

import tiny
from cefrtune import models
from cefrtune.export import export, ollama_prompt, ollama_template
from cefrtune.prompts import PromptStyle

WORDS = ["ev", "su", "okul", "kitap", "elma", "kedi", "araba", "anne", "güzel", "gitmek"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder whose merged/ holds a tiny Gemma-3 saved as cefrtune's merge saves it."""
    run = tmp_path_factory.mktemp("run")
    folder = run / "merged"
    tokenizer = AutoTokenizer.from_pretrained(models.resolve(models.EMBEDDED).path)
    style = PromptStyle.for_tokenizer(tokenizer)
    model = tiny.gemma3_embedded_vocab()
    model.generation_config.max_new_tokens = 40
    model.to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    style.save(folder)
    style.save_chat_template(folder)
    (folder / "cefrtune_model.json").write_text(json.dumps({"base_model": models.EMBEDDED, "level": "A1"}))
    return run


def test_gguf_holds_the_chat_template_the_stop_token_and_the_weights(tiny_run):
    import gguf

    result = export(tiny_run, quant="f16")
    assert result["gguf"].endswith("cefrtune-a1-f16.gguf") and result["modelfile"] is None
    reader = gguf.GGUFReader(result["gguf"])
    style = PromptStyle.load(tiny_run / "merged")
    assert reader.fields["tokenizer.chat_template"].contents() == style.chat_template()
    assert reader.fields["tokenizer.ggml.eot_token_id"].contents() == 106  # <end_of_turn>
    assert reader.fields["tokenizer.ggml.eos_token_id"].contents() == 1
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == 262144
    assert reader.fields["gemma3.block_count"].contents() == 2
    tensors = {t.name: t for t in reader.tensors}
    model = tiny.gemma3_embedded_vocab()
    norm = tensors["blk.1.ffn_norm.weight"]
    expected = model.model.layers[1].pre_feedforward_layernorm.weight.detach().to(torch.bfloat16).float().numpy() + 1.0
    np.testing.assert_allclose(np.asarray(norm.data), expected, rtol=0, atol=1e-6)  # llama.cpp stores Gemma's 1 + w
    embedding = tensors["token_embd.weight"]
    assert embedding.tensor_type == gguf.GGMLQuantizationType.F16
    expected = model.model.embed_tokens.weight.detach()[:5].to(torch.bfloat16).float().numpy()
    np.testing.assert_allclose(np.asarray(embedding.data)[:5].astype(np.float32), expected, rtol=1e-3, atol=1e-6)
    q8 = export(tiny_run, quant="q8_0")
    assert q8["bytes"] < result["bytes"] * 0.7  # 8.5 bits a weight against 16, plus the same vocabulary


def test_modelfile_template_renders_the_chat_template_prompt(tiny_run):
    result = export(tiny_run, quant="q8_0", ollama=True)
    text = (tiny_run / "gguf" / "Modelfile").read_text()
    style = PromptStyle.load(tiny_run / "merged")
    tokenizer = AutoTokenizer.from_pretrained(tiny_run / "merged")
    assert text.startswith("FROM ./cefrtune-a1-q8_0.gguf\n") and result["modelfile"]
    assert 'PARAMETER stop "<end_of_turn>"' in text and "PARAMETER num_predict 40" in text
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    assert template == ollama_template(style)
    message = style.user_message("A1", WORDS)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=False
    )
    # Ollama adds BOS itself (the GGUF says add_bos_token); everything else is the same text
    assert tokenizer.bos_token + ollama_prompt(template, message) == rendered


@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_llama_cpp_applies_the_template_and_decodes_like_transformers(tiny_run, quant):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is built by scripts/setup.sh")
    path = export(tiny_run, quant=quant)["gguf"]
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_threads=2, verbose=False)
    tokenizer = AutoTokenizer.from_pretrained(tiny_run / "merged")
    message = PromptStyle.load(tiny_run / "merged").user_message("A1", WORDS)
    request = tokenizer.apply_chat_template(
        [{"role": "user", "content": message}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    ids = request["input_ids"][0].tolist()
    assert llm.metadata["tokenizer.chat_template"] == tokenizer.chat_template
    # llama.cpp's tokenizer gives the ids transformers gives for the rendered prompt
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=False
    )
    assert llm.tokenize(rendered.encode(), add_bos=False, special=True) == ids
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_run / "merged", dtype=torch.float32)
    with torch.no_grad():
        expected = model.generate(**request, max_new_tokens=6, do_sample=False)[0, len(ids) :].tolist()
    produced = []
    for token in llm.generate(ids, temp=0.0, top_k=1, reset=True):
        produced.append(token)
        if len(produced) == len(expected):
            break
    assert produced[:3] == expected[:3] if quant == "q8_0" else produced == expected
    # the chat API applies the GGUF's own template: the same request, the same first tokens
    reply = llm.create_chat_completion(messages=[{"role": "user", "content": message}], max_tokens=3, temperature=0.0)
    assert reply["usage"]["prompt_tokens"] == len(ids)
    assert reply["choices"][0]["message"]["content"] == llm.detokenize(produced[:3]).decode(errors="ignore")

