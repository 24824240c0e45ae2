"""The prompt style: the one object that renders training, evaluation, generation and serving text.

A prompt asks, in Turkish, for one sentence per word at a level; the response is a numbered list
`1. …` to `N. …`. Models with a chat template are prompted through it; models without one (the
embedded Gemma-3-270M is a base model) get Gemma's turn markers when the tokenizer knows them,
else a plain "### Yanıt:" layout. The style is saved beside every adapter and merged model as
`prompt_style.json` and loaded from there, so nothing re-types a template; its `chat_template()`
is saved with their tokenizer (`chat_template.jinja`), so plain `apply_chat_template` renders
the same prompt, token for token.

With `name_words=True` each response line names its word first (`1. ev — Evde kimse yok.`); the
parser strips the word again (a format that helps small models keep word i in sentence i).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

FILENAME = "prompt_style.json"

INSTRUCTION = (
    "Aşağıdaki {n} kelimenin her biri için {level} seviyesinde bir Türkçe cümle yaz. "
    "Her cümle, aynı numaralı kelimeyi kullansın; kelimeyi Türkçenin gerektirdiği gibi çekimleyebilirsin. "
    "Cevabı numaralı bir liste olarak ver: her satırda bir cümle.\n\nKelimeler: {words}"
)
GEMMA_TURNS = ("<start_of_turn>user\n", "<end_of_turn>\n<start_of_turn>model\n", "<end_of_turn>\n")
PLAIN = ("", "\n\n### Yanıt:\n", "\n")
WORD_SEPARATOR = " — "


@dataclass
class PromptStyle:
    """How a request and its answer are laid out as text.

    kind: "chat_template" (rendered by the tokenizer's template, stored in `template`),
          "gemma_turns" or "plain" (the prefix/middle/suffix strings below).
    """

    kind: str
    user_prefix: str = ""
    assistant_prefix: str = ""
    assistant_suffix: str = ""
    template: str | None = None
    stop_strings: list[str] = field(default_factory=list)
    name_words: bool = False
    instruction: str = INSTRUCTION

    @classmethod
    def for_tokenizer(cls, tokenizer, name_words: bool = False) -> "PromptStyle":
        """Chat template when the tokenizer has one; Gemma's turn markers when it knows them;
        otherwise the plain layout."""
        if getattr(tokenizer, "chat_template", None):
            probe = tokenizer.apply_chat_template(
                [{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}], tokenize=False
            )
            stop = probe.split("A")[-1].strip() or tokenizer.eos_token
            return cls(
                kind="chat_template", template=tokenizer.chat_template, stop_strings=[stop], name_words=name_words
            )
        vocab = tokenizer.get_vocab()
        if "<start_of_turn>" in vocab and "<end_of_turn>" in vocab:
            user, assistant, suffix = GEMMA_TURNS
            return cls("gemma_turns", user, assistant, suffix, stop_strings=["<end_of_turn>"], name_words=name_words)
        user, assistant, suffix = PLAIN
        return cls("plain", user, assistant, suffix, stop_strings=[tokenizer.eos_token], name_words=name_words)

    def stop_token_ids(self, tokenizer) -> list[int]:
        """Ids of the stop strings that are single tokens of `tokenizer` (an answer ends with one)."""
        ids = {tokenizer.convert_tokens_to_ids(stop) for stop in self.stop_strings if stop}
        return sorted(ids - {None, tokenizer.unk_token_id})

    # ---- rendering ----------------------------------------------------------------------

    def user_message(self, level: str, words: list[str]) -> str:
        listed = ", ".join(f"{i}) {w}" for i, w in enumerate(words, start=1))
        return self.instruction.format(n=len(words), level=level, words=listed)

    def prompt(self, level: str, words: list[str], tokenizer=None) -> str:
        """The text a model is given (ends where its answer starts)."""
        message = self.user_message(level, words)
        if self.kind == "chat_template":
            return _chat(tokenizer, self.template, [{"role": "user", "content": message}], add_generation_prompt=True)
        return self.user_prefix + message + self.assistant_prefix

    def chat_prompt(self, messages: list[dict], tokenizer=None) -> str:
        """A conversation ({role, content} dicts, ending with the user) as the model is prompted:
        through the chat template, or this style's turn strings (system text opens the first user turn)."""
        if self.kind == "chat_template":
            return _chat(tokenizer, self.template, messages, add_generation_prompt=True)
        turns: list[list] = []  # [user text, assistant text or None]
        for message in messages:
            if message["role"] == "assistant":
                if not turns or turns[-1][1] is not None:
                    turns.append(["", None])
                turns[-1][1] = message["content"]
            elif turns and turns[-1][1] is None:
                turns[-1][0] += "\n\n" + message["content"]
            else:
                turns.append([message["content"], None])
        text = ""
        for user, assistant in turns:
            text += self.user_prefix + user.strip() + self.assistant_prefix
            if assistant is not None:
                text += assistant + self.assistant_suffix
        return text

    def response(self, sentences: list[str], words: list[str] | None = None, tokenizer=None) -> str:
        """The answer text, end-of-turn marker included (what training teaches the model to write)."""
        body = self.response_body(sentences, words)
        if self.kind == "chat_template":
            full = _chat(
                tokenizer,
                self.template,
                [{"role": "user", "content": "\x00"}, {"role": "assistant", "content": body}],
                add_generation_prompt=False,
            )
            return full[full.index(body) :]
        return body + self.assistant_suffix

    def response_body(self, sentences: list[str], words: list[str] | None = None) -> str:
        lines = []
        for i, sentence in enumerate(sentences, start=1):
            if self.name_words and words is not None:
                lines.append(f"{i}. {words[i - 1]}{WORD_SEPARATOR}{sentence}")
            else:
                lines.append(f"{i}. {sentence}")
        return "\n".join(lines)

    def strip_word(self, line: str, word: str | None) -> str:
        """Remove the `word — ` head of a line written in the name_words format."""
        if self.name_words and WORD_SEPARATOR.strip() in line:
            head, _, rest = line.partition(WORD_SEPARATOR.strip())
            if word is None or len(head.split()) <= max(3, len(word.split()) + 1):
                return rest.strip()
        return line.strip()

    # ---- the chat template saved with the tokenizer ---------------------------------------

    def chat_template(self) -> str:
        """A Jinja chat template that renders exactly this style's prompt (and, for an assistant
        message, its response with the end-of-turn marker), so that `apply_chat_template` outside
        cefrtune gives the token ids training saw: `{bos}` + user prefix + message + assistant
        prefix. Every literal is a Jinja string expression, so the whitespace trimming that
        transformers and llama.cpp apply around `{% %}` tags cannot eat a newline."""
        if self.kind == "chat_template":
            return self.template

        def literal(text: str) -> str:
            return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"

        return (
            "{{ bos_token if bos_token else '' }}"
            "{% for message in messages %}"
            "{% if message['role'] == 'user' %}"
            + literal(self.user_prefix) + "{{ message['content'] }}"
            "{% if not loop.last or add_generation_prompt %}" + literal(self.assistant_prefix) + "{% endif %}"
            "{% elif message['role'] == 'assistant' %}"
            "{{ message['content'] }}" + literal(self.assistant_suffix) +
            "{% else %}"
            "{{ raise_exception('This model takes user and assistant messages only (no ' + message['role'] + ')') }}"
            "{% endif %}"
            "{% endfor %}"
        )

    def save_chat_template(self, folder: str | Path) -> Path:
        """Write `chat_template.jinja` beside a saved tokenizer (transformers loads it from there)."""
        path = Path(folder) / "chat_template.jinja"
        path.write_text(self.chat_template(), encoding="utf-8")
        return path

    # ---- persistence --------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "PromptStyle":
        path = Path(folder) / FILENAME
        if not path.exists():
            raise FileNotFoundError(f"{path}: no prompt style saved beside this model (trained by cefrtune?)")
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def load_or_default(cls, folder: str | Path, tokenizer) -> "PromptStyle":
        path = Path(folder) / FILENAME
        return cls.load(folder) if path.exists() else cls.for_tokenizer(tokenizer)


def _chat(tokenizer, template: str, messages: list[dict], add_generation_prompt: bool) -> str:
    if tokenizer is None:
        raise ValueError("a chat-template prompt style needs the tokenizer to render")
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt
    )


_LINE = re.compile(r"^\s*(\d{1,2})\s*[.)\-:]\s*(.*\S)?\s*$")


@dataclass
class ParsedList:
    """A model's numbered answer, parsed: sentences[i] is None when number i+1 was missing."""

    sentences: list[str | None]
    issues: list[str]

    @property
    def format_valid(self) -> bool:
        return not self.issues


def parse_numbered(text: str, n: int, style: PromptStyle | None = None, words: list[str] | None = None) -> ParsedList:
    """Parse `1. …` … `n. …` lines. Extra text, missing or repeated numbers, numbers out of
    order and merged lines are reported as issues, never raised."""
    for stop in (style.stop_strings if style else []):
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    sentences: list[str | None] = [None] * n
    issues: list[str] = []
    expected = 1
    for raw in text.strip().splitlines():
        if not raw.strip():
            continue
        match = _LINE.match(raw)
        if not match:
            issues.append(f"text outside the numbered list: '{raw.strip()[:60]}'")
            continue
        number, body = int(match.group(1)), (match.group(2) or "").strip()
        if not 1 <= number <= n:
            issues.append(f"number {number} outside 1-{n}")
            continue
        if number != expected:
            issues.append(f"number {number} where {expected} was expected")
        expected = number + 1
        if sentences[number - 1] is not None:
            issues.append(f"number {number} repeated")
            continue
        if re.search(r"\s\d{1,2}[.)]\s+\w", body):
            issues.append(f"line {number} holds more than one numbered sentence")
        if style is not None:
            body = style.strip_word(body, words[number - 1] if words else None)
        if not body:
            issues.append(f"sentence {number} is empty")
            continue
        sentences[number - 1] = body
    missing = [str(i + 1) for i, s in enumerate(sentences) if s is None]
    if missing:
        issues.append(f"missing sentence(s) {', '.join(missing)}")
    return ParsedList(sentences, issues)
