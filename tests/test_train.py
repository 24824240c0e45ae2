"""Training on tiny config-built models (Llama and Gemma-3 architectures): no hub, seconds each."""

import math

import pytest
import torch
from peft import PeftModel

import tiny
from cefrtune.config import load_config
from cefrtune.evaluate import loss_metrics
from cefrtune.features import TooLongError
from cefrtune.merge import merge
from cefrtune.prompts import PromptStyle
from cefrtune.train import train

ARCHS = {"llama": tiny.llama, "gemma3": tiny.gemma3}


def tiny_config(**overrides):
    values = dict(model="tiny", per_device_train_batch_size=2, gradient_accumulation_steps=2, num_train_epochs=3,
                  learning_rate=3e-3, warmup_ratio=0.0, lora_r=4, lora_alpha=8, train_dtype="fp32", max_seq_length=256,
                  train_subset=None, eval_subset=None, per_device_eval_batch_size=2)
    values.update(overrides)
    return load_config("smoke", values)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_loss_goes_down_lora_changes_base_frozen(arch, tok, examples, tmp_path):
    model = ARCHS[arch](len(tok))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(
        tiny_config(num_train_epochs=6, learning_rate=1e-2),
        examples[:6],
        examples[6:],
        tmp_path,
        model=model,
        tokenizer=tok,
    )
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert losses[-1] < losses[0] * 0.9
    evals = [h["eval_loss"] for h in result.history if "eval_loss" in h]
    assert min(evals) < evals[0]
    after = model.state_dict()  # LoRA layers were injected into this very model
    lora = {k: v for k, v in after.items() if "lora_B" in k}
    assert lora and any(v.abs().sum() > 0 for v in lora.values())  # B starts at zero
    for name, value in after.items():
        if "lora_" in name or "trainable_tokens_" in name:
            continue
        original = name.replace(".base_layer", "").replace(".token_adapter", "")
        torch.testing.assert_close(value, before[original], rtol=0, atol=0)
    # the stop token's row (<end_of_turn>, id 5 of the tiny tokenizer) trains beside the adapter
    delta = next(v for k, v in after.items() if "trainable_tokens_delta" in k)
    original = before["model.embed_tokens.weight"][tok.convert_tokens_to_ids("<end_of_turn>")]
    assert delta.shape == (1, original.shape[0]) and not torch.allclose(delta[0], original)
    assert result.steps_per_epoch == math.ceil(6 / 4) and result.total_steps == 6 * 2
    assert (tmp_path / "adapter" / "prompt_style.json").exists()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_merged_equals_base_plus_adapter(arch, tok, examples, tmp_path):
    train(
        tiny_config(num_train_epochs=2),
        examples[:6],
        examples[6:],
        tmp_path,
        model=ARCHS[arch](len(tok)),
        tokenizer=tok,
    )
    base = ARCHS[arch](len(tok))  # same seed -> same base weights
    peft_model = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    ids = torch.tensor([tok("Evde kimse yok 1 2 3")["input_ids"]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
    # fp32 here, for an exact comparison (merged/ is saved in bf16 by default; the run's merge check covers that)
    merged = merge(
        "tiny", tmp_path / "adapter", tmp_path / "merged", base_model=peft_model, tokenizer=tok, dtype="fp32"
    )
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-4)
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-4)
    assert PromptStyle.load(tmp_path / "merged").kind == "gemma_turns"
    from transformers import AutoTokenizer

    for folder in ("adapter", "merged"):  # both carry the chat template that renders the training prompt
        template = AutoTokenizer.from_pretrained(tmp_path / folder).chat_template
        assert template and template == PromptStyle.load(tmp_path / folder).chat_template()


def test_resume_after_interruption_gives_the_same_adapter(tok, examples, tmp_path, monkeypatch):
    import cefrtune.train as train_module

    config = tiny_config(num_train_epochs=3)
    full = train(config, examples[:6], examples[6:], tmp_path / "full", model=tiny.llama(len(tok)), tokenizer=tok)
    # An interrupted run: the process dies in epoch 2, after epoch 1's checkpoint was written.
    original = train_module._save_checkpoint

    def crash_after_first(folder, model, optimizer, scheduler, state):
        original(folder, model, optimizer, scheduler, state)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(train_module, "_save_checkpoint", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        train(config, examples[:6], examples[6:], tmp_path / "cut", model=tiny.llama(len(tok)), tokenizer=tok)
    monkeypatch.setattr(train_module, "_save_checkpoint", original)
    cut_state = (tmp_path / "cut" / "checkpoints" / "last" / "trainer_state.json").read_text()
    assert '"epoch": 1' in cut_state
    resumed = train(
        config, examples[:6], examples[6:], tmp_path / "cut", resume=True, model=tiny.llama(len(tok)), tokenizer=tok
    )
    from safetensors.torch import load_file

    a = load_file(tmp_path / "full" / "checkpoints" / "last" / ".." / ".." / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "cut" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    assert resumed.best_eval_loss == pytest.approx(full.best_eval_loss, rel=1e-6)


def test_too_long_example_is_refused_by_name(tok, examples, tmp_path):
    with pytest.raises(TooLongError, match="e0"):
        train(
            tiny_config(max_seq_length=20),
            examples[:4],
            examples[4:],
            tmp_path,
            model=tiny.llama(len(tok)),
            tokenizer=tok,
        )


def hand_computed_nll(model, tok, style, example):
    """Every next-token NLL of one example, unbatched, and its prompt length."""
    from cefrtune.features import encode

    prompt, response = encode(example, tok, style)
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    return -logprobs[torch.arange(ids.shape[1] - 1), ids[0, 1:]], len(prompt)


def test_loss_definitions_on_a_hand_computed_example(tok, examples):
    """full_text = mean NLL over every token after the first; response = over answer tokens only."""
    model = tiny.llama(len(tok)).eval()
    style = PromptStyle.for_tokenizer(tok)
    nll, prompt = hand_computed_nll(model, tok, style, examples[0])
    got = loss_metrics(model, tok, style, examples[:1])
    assert got["full_text_loss"] == pytest.approx(nll.mean().item(), rel=1e-5)
    assert got["response_loss"] == pytest.approx(nll[prompt - 1 :].mean().item(), rel=1e-5)
    assert got["response_ppl"] == pytest.approx(math.exp(got["response_loss"]), rel=1e-5)
    assert got["full_text_tokens"] == len(nll) and got["response_tokens"] == len(nll) - prompt + 1


def test_loss_definitions_over_padded_batches(tok, examples):
    """Both definitions from one padded, length-sorted pass equal the token-weighted means of
    the unbatched per-example NLLs."""
    model = tiny.gemma3(len(tok)).eval()
    style = PromptStyle.for_tokenizer(tok)
    chosen = examples[:5]
    nlls = [hand_computed_nll(model, tok, style, e) for e in chosen]
    got = loss_metrics(model, tok, style, chosen, batch_size=2)
    full = torch.cat([nll for nll, _ in nlls])
    response = torch.cat([nll[prompt - 1 :] for nll, prompt in nlls])
    assert got["full_text_loss"] == pytest.approx(full.mean().item(), rel=1e-5)
    assert got["response_loss"] == pytest.approx(response.mean().item(), rel=1e-5)
    assert (got["full_text_tokens"], got["response_tokens"]) == (len(full), len(response))


def test_chat_template_prompt_style(chat_tok, examples):
    style = PromptStyle.for_tokenizer(chat_tok)
    assert style.kind == "chat_template"
    prompt = style.prompt("A1", examples[0].words, chat_tok)
    response = style.response(examples[0].sentences, examples[0].words, chat_tok)
    assert prompt.endswith("<|assistant|>\n") and response.startswith("1. ") and response.endswith("<|end|>\n")
    assert style.stop_strings == ["<|end|>"]


def test_bf16_and_compiled_training_match_plain_fp32(tok, examples, tmp_path):
    """The speed levers (bf16 base with LoRA inputs kept in bf16, compiled decoder layers and
    softmax, eager attention on CPU) train the same model: same train losses as plain fp32 with
    the model's own attention (sdpa), within bf16 rounding."""
    config = dict(num_train_epochs=2, learning_rate=1e-2)
    plain = train(
        tiny_config(**config),
        examples[:4],
        examples[4:6],
        tmp_path / "plain",
        model=tiny.gemma3(len(tok)),
        tokenizer=tok,
    )
    sdpa = train(tiny_config(attention="sdpa", **config), examples[:4], examples[4:6], tmp_path / "sdpa",
                 model=tiny.gemma3(len(tok)), tokenizer=tok)
    compiled = train(tiny_config(compile=True, **config), examples[:4], examples[4:6], tmp_path / "compiled",
                     model=tiny.gemma3(len(tok)), tokenizer=tok)
    fast = train(tiny_config(train_dtype="bf16", **config), examples[:4], examples[4:6], tmp_path / "bf16",
                 model=tiny.gemma3(len(tok)), tokenizer=tok)

    def losses(result):
        return [h["loss"] for h in result.history if "loss" in h]

    torch.testing.assert_close(losses(sdpa), losses(plain), rtol=1e-4, atol=0)
    torch.testing.assert_close(losses(compiled), losses(plain), rtol=1e-4, atol=0)
    torch.testing.assert_close(losses(fast), losses(plain), rtol=2e-2, atol=0)
    assert abs(fast.best_eval_loss - plain.best_eval_loss) / plain.best_eval_loss < 2e-2


def test_unsloth_backend_without_cuda_names_the_default(tok, examples, tmp_path):
    from cefrtune.unsloth_backend import BackendUnavailable

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path is for machines without it")
    with pytest.raises(BackendUnavailable, match=r"no CUDA device.*--set backend=torch"):
        train(
            tiny_config(backend="unsloth"),
            examples[:4],
            examples[4:6],
            tmp_path,
            model=tiny.gemma3(len(tok)),
            tokenizer=tok,
        )
    assert not (tmp_path / "adapter").exists()


def test_early_stopping_ends_where_the_full_run_stops_improving(tok, examples, tmp_path):
    from cefrtune.examples import Example

    # Eval sentences unlike the training ones: the tiny model first learns the format, then overfits.
    other = [
        "Bugün hava çok güzel.",
        "Annem çay içiyor.",
        "Sınıfta on öğrenci var.",
        "Otobüs geç geldi.",
        "Pazardan domates aldık.",
        "Kardeşim top oynuyor.",
        "Akşam yemeği hazır.",
        "Kapıyı kapat lütfen.",
        "Deniz mavi.",
        "Saat üçte buluşalım.",
    ]
    held_out = [
        Example("A1", examples[0].words, other, id="o1"),
        Example("A1", examples[0].words, other[::-1], id="o2"),
    ]
    config = dict(num_train_epochs=10, learning_rate=3e-2)
    full = train(tiny_config(early_stopping_patience=None, **config), examples[:6], held_out, tmp_path / "full",
                 model=tiny.llama(len(tok)), tokenizer=tok)
    evals = [h["eval_loss"] for h in full.history if "eval_loss" in h]
    assert len(evals) == 10 and full.steps_run == full.total_steps and not full.stopped_early
    # The first epoch that is `patience` epochs past the best so far is where training must stop.
    patience = 2
    stop = next((e for e in range(1, 11) if e - (1 + evals.index(min(evals[:e]))) >= patience), None)
    assert stop is not None and stop < 10, f"the eval loss never stopped improving: {evals}"
    early = train(tiny_config(early_stopping_patience=patience, **config), examples[:6], held_out, tmp_path / "early",
                  model=tiny.llama(len(tok)), tokenizer=tok)
    assert early.stopped_early and early.epochs_run == stop
    assert early.steps_run == stop * early.steps_per_epoch < early.total_steps == full.total_steps
    assert early.best_eval_loss == pytest.approx(min(evals), rel=1e-6)
    assert early.best_eval_epoch == full.best_eval_epoch
    # Resuming a run that stopped early does not train on.
    again = train(tiny_config(early_stopping_patience=patience, **config), examples[:6], held_out, tmp_path / "early",
                  resume=True, model=tiny.llama(len(tok)), tokenizer=tok)
    assert again.steps_run == early.steps_run and again.stopped_early


def test_collate_pads_to_a_multiple_with_masked_ignored_positions():
    from cefrtune.features import collate
    from cefrtune.loss import IGNORE

    features = [
        {"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]},
        {"input_ids": [8, 9, 10, 11, 12], "labels": [IGNORE, IGNORE, 10, 11, 12]},
    ]
    batch = collate(features, pad_id=0, device="cpu", multiple=4)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0, 0, 0, 0, 0], [8, 9, 10, 11, 12, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7] + [IGNORE] * 5, [IGNORE, IGNORE, 10, 11, 12] + [IGNORE] * 3]
    assert collate(features, pad_id=0, device="cpu")["input_ids"].shape == (2, 5)
