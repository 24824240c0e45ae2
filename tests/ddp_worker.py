"""Trains a tiny config-built model with cefrtune's trainer; run directly (1 process) or under
torchrun (N processes). Writes result.json (rank 0 only) beside the run's files."""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import tiny  # noqa: E402
from cefrtune.config import load_config  # noqa: E402
from cefrtune.examples import Example  # noqa: E402
from cefrtune.train import train  # noqa: E402


def main(out: str, per_device_batch: int) -> None:
    tok = tiny.tokenizer()
    words = ["ev", "su", "okul", "kitap", "elma", "kedi", "araba", "anne", "güzel", "gitmek"]
    base = [
        "Evde kimse yok.",
        "Bir bardak su içtim.",
        "Yarın okula gidiyorum.",
        "Kitabı masada bıraktım.",
        "Elma kırmızı.",
        "Kedi uyuyor.",
        "Araba yeni.",
        "Anne evde.",
        "Güzel bir gün.",
        "Okula gitmek.",
    ]
    examples = [
        Example("A1", words, [f"{s[:-1]} {i}{' ' + 'çok' * (i % 3)}." for s in base], id=f"e{i}") for i in range(12)
    ]
    config = load_config(
        "smoke",
        dict(
            model="tiny",
            per_device_train_batch_size=per_device_batch,
            gradient_accumulation_steps=2,
            num_train_epochs=2,
            learning_rate=1e-2,
            warmup_ratio=0.0,
            lora_r=4,
            lora_alpha=8,
            train_dtype="fp32",
            train_subset=None,
            eval_subset=None,
            per_device_eval_batch_size=2,
        ),
    )
    result = train(config, examples[:10], examples[10:], out, model=tiny.llama(len(tok)), tokenizer=tok)
    if int(os.environ.get("RANK", "0")) == 0:
        record = {"final_train_loss": result.final_train_loss, "best_eval_loss": result.best_eval_loss,
                  "world_size": result.world_size, "effective_batch": result.effective_batch,
                  "losses": [h.get("loss", h.get("eval_loss")) for h in result.history]}
        Path(out, "result.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
