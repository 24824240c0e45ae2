"""The chat template saved with a tuned model's tokenizer renders the training prompt, token for token."""

import pytest
from transformers import AutoTokenizer

from cefrtune.features import encode
from cefrtune.prompts import PLAIN, PromptStyle


def _ids(rendered) -> list[int]:
    return list(rendered["input_ids"] if hasattr(rendered, "keys") else rendered)


def _styles(tok):
    return {
        "gemma_turns": PromptStyle.for_tokenizer(tok),
        "plain": PromptStyle("plain", *PLAIN, stop_strings=[tok.eos_token]),
    }


@pytest.mark.parametrize("kind", ["gemma_turns", "plain"])
def test_saved_chat_template_renders_the_training_prompt(kind, tok, examples, tmp_path):
    style = _styles(tok)[kind]
    assert style.kind == kind
    tok.save_pretrained(tmp_path)
    style.save_chat_template(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)  # what a user of the model folder gets
    for example in examples[:3]:
        prompt_ids, response_ids = encode(example, tok, style)
        message = {"role": "user", "content": style.user_message(example.level, example.words)}
        request = loaded.apply_chat_template([message], add_generation_prompt=True, tokenize=True)
        assert _ids(request) == prompt_ids
        answer = {"role": "assistant", "content": style.response_body(example.sentences, example.words)}
        conversation = loaded.apply_chat_template([message, answer], tokenize=True)
        assert _ids(conversation) == prompt_ids + response_ids
        text = loaded.apply_chat_template([message], add_generation_prompt=True, tokenize=False)
        assert text == (tok.bos_token or "") + style.prompt(example.level, example.words, tok)


def test_chat_template_refuses_a_system_message(tok):
    style = PromptStyle.for_tokenizer(tok)
    with pytest.raises(Exception, match="user and assistant messages only"):
        tok.apply_chat_template(
            [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}],
            chat_template=style.chat_template(),
            tokenize=False,
        )


def test_a_model_with_its_own_chat_template_keeps_it(chat_tok):
    style = PromptStyle.for_tokenizer(chat_tok)
    assert style.kind == "chat_template" and style.chat_template() == chat_tok.chat_template


@pytest.mark.slow
def test_embedded_tokenizer_renders_the_training_prompt(examples, tmp_path):
    """The real Gemma tokenizer (the embedded model's, converted once into the cache)."""
    from cefrtune import models

    real = AutoTokenizer.from_pretrained(models.resolve(models.EMBEDDED).path)
    style = PromptStyle.for_tokenizer(real)
    real.save_pretrained(tmp_path)
    style.save_chat_template(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    example = examples[0]
    prompt_ids, response_ids = encode(example, real, style)
    message = {"role": "user", "content": style.user_message(example.level, example.words)}
    answer = {"role": "assistant", "content": style.response_body(example.sentences, example.words)}
    assert _ids(loaded.apply_chat_template([message], add_generation_prompt=True, tokenize=True)) == prompt_ids
    assert _ids(loaded.apply_chat_template([message, answer], tokenize=True)) == prompt_ids + response_ids
    assert real.convert_ids_to_tokens(response_ids[-2:]) == ["<end_of_turn>", "\n"]
