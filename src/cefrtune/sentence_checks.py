"""Checks of one sentence that see more than morphology: what makes a sentence unusable on a
worksheet although every word is real Turkish.

    >>> from cefrtune.sentence_checks import sentence_findings
    >>> [f.kind for f in sentence_findings("Parkta çok güzel bir park var.")]
    ['tautology']

Each check returns findings (a kind and a message a teacher understands); checked generation
(through `cefrtune.metrics.check_sentence`) and `cefrtune data validate` run the same ones:

- tautology: the same content word twice (`Parkta … park`, `Su, su, su.`); an immediate
  reduplication (`yavaş yavaş`) is Turkish, not a tautology;
- no_predicate: a bare list of words (`Elma, armut ve muz.`) or a single word;
- spelling: a capital I where İ belongs or the reverse (`Inek`), which the analyser would
  otherwise take for a name;
- foreign_fragment: text glued to a word (`tuzlu.FlashValue`), mixed-case or non-Turkish letters;
- list_number / meta_text: a list number (`2. Sözlükten …`) or talk about the task
  (`cümle şu: "…"`) inside a sentence.

How often each check flags sentences a blind rater found unusable (precision) and how many of
those it finds (recall) is measured in docs/rating.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cefrtune.turkish import Token, analyse_sentence, analyse_word, fold

CONTENT_POS = frozenset({"Noun", "Verb", "Adj"})
# Words that recur in natural sentences without saying the same thing twice.
LIGHT_LEMMAS = frozenset({"olmak", "etmek", "var", "yok", "değil", "gün", "zaman", "şey", "kez", "defa"})
# A verb, a copula on a noun (`mavi-yim`, `evde-ydi`) or one of these makes a predicate.
PREDICATE_WORDS = frozenset({"var", "yok", "değil", "lazım", "gerek", "evet", "hayır", "merhaba", "lütfen", "teşekkürler"})
_GLUED = re.compile(r"[a-zçğıöşüâîû][.!?;:,][A-Za-zÇĞİÖŞÜçğıöşü]")
_INNER_CAPITAL = re.compile(r"[a-zçğıöşü][A-ZÇĞİÖŞÜ]")
_NON_TURKISH_LETTER = re.compile(r"[qwxQWX]")
_LIST_NUMBER = re.compile(r"(?:^|\s)\d{1,2}[.)](?:\s|$)")
_META = re.compile(r"\b(cümle|kelime|örnek|cevap|yanıt|seviye|liste)\w*\s*:", re.IGNORECASE)
_SPAN = re.compile(r"[A-Za-zÇĞİÖŞÜÂÎÛçğıöşüâîû]+(?:['’][A-Za-zçğıöşüâîû]+)?")


@dataclass(frozen=True)
class Finding:
    """One reason a sentence would not go on a worksheet."""

    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


def sentence_findings(sentence: str, tokens: list[Token] | None = None) -> list[Finding]:
    """Every finding of one sentence (empty when none). `tokens` are its analysed tokens, when
    the caller already has them."""
    tokens = analyse_sentence(sentence) if tokens is None else tokens
    return [
        *tautology(sentence, tokens),
        *no_predicate(sentence, tokens),
        *spelling(tokens),
        *foreign_fragments(sentence),
        *list_text(sentence),
    ]


def tautology(sentence: str, tokens: list[Token]) -> list[Finding]:
    """The same content word said twice, not side by side."""
    spans = [m.span() for m in _SPAN.finditer(sentence)]
    first: dict[frozenset, int] = {}
    findings = []
    for i, token in enumerate(tokens):
        key = _content_key(token)
        if not key:
            continue
        j = first.setdefault(key, i)
        if j == i:
            continue
        between = sentence[spans[j][1] : spans[i][0]] if len(spans) == len(tokens) else " "
        if i == j + 1 and between.strip() == "":
            continue  # reduplication: `yavaş yavaş`, `ev ev`
        findings.append(Finding("tautology", f"says '{tokens[j].text}' twice ('{token.text}'): a tautology"))
        break
    return findings


def no_predicate(sentence: str, tokens: list[Token]) -> list[Finding]:
    """A bare list of words (`Elma, armut ve muz.`) or one word: nothing is said about anything."""
    if not tokens or any(_predicative(t) for t in tokens):
        return []
    items = [part for part in re.split(r",|;|\bve\b|\bile\b|\bveya\b", fold(sentence)) if _SPAN.search(part)]
    if len(tokens) == 1 or (len(items) >= 2 and all(len(_SPAN.findall(item)) == 1 for item in items)):
        return [Finding("no_predicate", "a list of words, not a sentence (no verb or predicate)")]
    return []


def spelling(tokens: list[Token]) -> list[Finding]:
    """A capital I/İ that makes a common word look like an unknown name (`Inek` for `İnek`)."""
    findings = []
    for token in tokens:
        if token.analyses or token.text[:1] not in ("I", "İ"):
            continue
        swapped = ("İ" if token.text[0] == "I" else "I") + token.text[1:]
        stem = re.split(r"['’]", swapped)[0]
        if analyse_word(stem):
            findings.append(Finding("spelling", f"'{token.text}' should be written '{swapped}' (I and İ are different letters)"))
    return findings


def foreign_fragments(sentence: str) -> list[Finding]:
    """Text glued to a word after punctuation, mixed-case words, letters Turkish does not use."""
    findings = []
    glued = _GLUED.search(sentence)
    if glued:
        findings.append(Finding("foreign_fragment", f"text glued to a word: '{_word_around(sentence, glued.start())}'"))
    for word in _SPAN.findall(sentence):
        if _INNER_CAPITAL.search(word) or _NON_TURKISH_LETTER.search(word):
            findings.append(Finding("foreign_fragment", f"'{word}' is not Turkish"))
            break
    return findings


def list_text(sentence: str) -> list[Finding]:
    """A list number or talk about the task inside the sentence."""
    findings = []
    if _LIST_NUMBER.search(sentence):
        findings.append(Finding("list_number", "a list number inside the sentence"))
    if _META.search(sentence) or re.search(r":\s*[\"“«']", sentence):
        findings.append(Finding("meta_text", "talks about the task instead of being a sentence"))
    return findings


def _content_key(token: Token) -> frozenset:
    """The (lemma, part of speech) readings of a content word; empty for function words, names,
    unknown words and light words."""
    if token.proper or not token.analyses:
        return frozenset()
    if any(a.pos not in CONTENT_POS for a in token.analyses):
        return frozenset()  # some reading is a function word (`bir`, `çok`, `için`)
    key = frozenset((a.lemma, a.pos) for a in token.analyses)
    if any(lemma in LIGHT_LEMMAS for lemma, _ in key):
        return frozenset()
    return key


def _predicative(token: Token) -> bool:
    if fold(token.text) in PREDICATE_WORDS or token.lemmas & PREDICATE_WORDS:
        return True
    return any(a.pos == "Verb" or "Zero" in a.morphemes or "Cop" in a.morphemes for a in token.analyses)


def _word_around(sentence: str, index: int) -> str:
    start = sentence.rfind(" ", 0, index) + 1
    end = sentence.find(" ", index)
    return sentence[start : end if end != -1 else len(sentence)]
