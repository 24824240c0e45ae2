"""Tiny models and a tiny tokenizer built from configs, for tests: no hub, no download."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL = ["<pad>", "<bos>", "<eos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

CORPUS = [
    "Aşağıdaki kelimenin her biri için seviyesinde bir Türkçe cümle yaz Her cümle aynı numaralı kelimeyi kullansın",
    "kelimeyi Türkçenin gerektirdiği gibi çekimleyebilirsin Cevabı numaralı bir liste olarak ver her satırda bir cümle",
    "Kelimeler ev su okul kitap elma kedi araba anne güzel gitmek A1 A2 B1 B2 C1",
    "Evde kimse yok Yarın okula gidiyorum Kitabı masada bıraktım Bir bardak su içtim",
    "0 1 2 3 4 5 6 7 8 9 10 . , ) ( — ? !",
]


def tokenizer(chat: bool = False) -> PreTrainedTokenizerFast:
    special = SPECIAL + (["<|user|>", "<|assistant|>", "<|end|>"] if chat else [])
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tok.train_from_iterator(
        CORPUS * 3, trainers.BpeTrainer(vocab_size=400, special_tokens=special, show_progress=False)
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def llama(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        initializer_range=0.5,
    )
    return LlamaForCausalLM(config)


def gemma3(vocab_size: int, seed: int = 0, tied: bool = True):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
                              sliding_window=64, tie_word_embeddings=tied,
                              initializer_range=0.5)  # a tied, frozen head needs large weights to move the loss
    # (tied, such a model mostly repeats its last token: decoding tests untie it)
    return Gemma3ForCausalLM(config)


def save(model, tok, folder) -> str:
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def gemma3_embedded_vocab(seed: int = 0):
    """A tiny Gemma-3 with the embedded model's 262,144-token vocabulary (random weights), for the
    GGUF export: llama.cpp needs the real tokenizer. query_pre_attn_scalar = head_dim, as llama.cpp
    assumes for Gemma-3."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(vocab_size=262144, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32,
                              max_position_embeddings=1024, sliding_window=512, tie_word_embeddings=True,
                              initializer_range=0.1, bos_token_id=2, eos_token_id=1, pad_token_id=0)
    return Gemma3ForCausalLM(config)
