"""Model cards: Hugging Face metadata, the licence, the exact prompt, the evaluation table."""

from cefrtune.modelcard import licence, write_cards
from cefrtune.prompts import PromptStyle

LOSSES = {"response_loss": 1.5, "response_ppl": 4.48, "full_text_loss": 2.0, "full_text_ppl": 7.39}
METRICS = {
    "level": "A1",
    "base_model": "gemma-3-270m",
    "base_model_source": "embedded-gguf",
    "base_model_revision": "a5fd3b62",
    "data": "data/a1.jsonl",
    "data_sha256": "0" * 64,
    "train_examples": 160,
    "eval_examples": 18,
    "seed": 42,
    "steps_run": 15,
    "epochs_run": 5,
    "best_eval_epoch": 4,
    "best_eval_loss": 0.9,
    "train_runtime_s": 700.0,
    "device": "cpu",
    "learning_rate": 2e-4,
    "lora_r": 128,
    "train_stop_token": True,
    "baseline": dict(LOSSES, generation={"format_valid": 0.0, "target_word_used": 0.1}),
    "tuned": dict(LOSSES, response_loss=0.9, generation={"format_valid": 1.0, "target_word_used": 0.73}),
    "merge_check": {"relative_difference": 4e-4, "tolerance": 1e-2},
}


def test_cards_say_base_licence_prompt_and_figures(tok, tmp_path):
    style = PromptStyle.for_tokenizer(tok)
    for folder in ("merged", "adapter"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.safetensors").write_bytes(b"0" * 2_000_000)
    written = write_cards(tmp_path, METRICS, style, tok)
    assert [p.parent.name for p in written] == ["merged", "adapter"]
    merged = (tmp_path / "merged" / "README.md").read_text()
    front = merged.split("---\n")[1]
    assert "base_model: google/gemma-3-270m\nlicense: gemma\n" in front and "library_name: transformers" in front
    assert "Gemma Terms of Use" in merged
    words = ["ev", "su", "okul", "kitap", "elma", "kedi", "araba", "anne", "güzel", "gitmek"]
    assert "```text\n" + tok.bos_token + style.prompt("A1", words).rstrip("\n") + "\n```" in merged
    assert repr(style.user_message("A1", words)) in merged  # the copy-paste example's message
    assert (
        "| answer loss (NLL/token) | 1.500 | 0.900 |" in merged
        and "| format_valid (greedy) | 0.000 | 1.000 |" in merged
    )
    assert "| model.safetensors | 2.0 MB |" in merged
    adapter = (tmp_path / "adapter" / "README.md").read_text()
    assert "library_name: peft" in adapter and "resolve('gemma-3-270m')" in adapter and "PeftModel" in adapter


def test_licence_follows_the_base_family():
    assert licence("gemma-3-270m")[0] == "gemma"
    assert licence("meta-llama/Llama-3.2-1B-Instruct")[0] == "llama3.2"
    assert licence("some/other-model")[0] == "other"
