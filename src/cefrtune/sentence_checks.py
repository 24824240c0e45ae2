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
  otherwise take for a name; a sentence that starts with a small letter (`ılık su …`);
- foreign_fragment: text glued to a word (`tuzlu.FlashValue`), mixed-case words, q/w/x in a word
  that is not a name (`bowling`; Turkish writes `bovling`);
- list_number / meta_text: a list number (`2. Sözlükten …`) or talk about the task
  (`cümle şu: "…"`) inside a sentence.

How often each check flags sentences a blind rater found unusable (precision) and how many of
those it finds (recall) is measured in docs/rating.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cefrtune.turkish import DERIVATIONS, Token, analyse_sentence, analyse_word, capitalize, fold

CONTENT_POS = frozenset({"Noun", "Verb", "Adj"})
# Words that recur in natural sentences without saying the same thing twice.
# (`pazar` is also Sunday and `saat` also an hour: `Pazar günü pazara gittik`, `Duvar saati her saat çalar`.)
LIGHT_LEMMAS = frozenset({"olmak", "etmek", "var", "yok", "değil", "gün", "zaman", "şey", "kez", "defa",
                          "pazar", "saat"})
POSSESSIVES = frozenset({"P1sg", "P2sg", "P3sg", "P1pl", "P2pl", "P3pl"})
COMPARISON_WORDS = frozenset({"benzemek", "gibi", "göre", "kadar", "daha", "yerine", "benzer", "aynı"})
# A verb, a copula on a noun (`mavi-yim`, `evde-ydi`) or one of these makes a predicate.
PREDICATE_WORDS = frozenset({"var", "yok", "değil", "lazım", "gerek", "evet", "hayır", "merhaba", "lütfen",
                             "teşekkürler"})
_GLUED = re.compile(r"[a-zçğıöşüâîû][.!?;:,][A-Za-zÇĞİÖŞÜçğıöşü]")
_INNER_CAPITAL = re.compile(r"[a-zçğıöşü][A-ZÇĞİÖŞÜ]")
_NON_TURKISH_LETTER = re.compile(r"[qwxQWX]")
_LIST_NUMBER = re.compile(r"(?:^|\s)\d{1,2}[.)](?:\s|$)")
_META = re.compile(r"\b(cümle|kelime|örnek|cevap|yanıt|seviye|liste)\w*\s*:", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"[,;:–—]|\b(ve|ama|fakat|ancak|çünkü|veya|ya da|yoksa|sonra)\b")
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
        *small_first_letter(sentence),
        *foreign_fragments(sentence),
        *list_text(sentence),
    ]


def tautology(sentence: str, tokens: list[Token]) -> list[Finding]:
    """The same content word twice in one clause (`Parkta … bir park var`). Natural repetitions are
    left alone: across clauses (`Bu bardak kirli, bana temiz bir bardak ver.`), side by side
    (`yavaş yavaş`) and the superlative (`şehrin en yüksek binası`)."""
    spans = [m.span() for m in _SPAN.finditer(sentence)]
    if len(spans) != len(tokens) or _complex(tokens):
        return []
    first: dict[frozenset, int] = {}
    for i, token in enumerate(tokens):
        key = _content_key(token)
        if not key or (i > 0 and token.text[:1].isupper()) or _compound_modifier(tokens, i):
            continue  # function words, names, `polis` in `polis arabası`
        j = first.setdefault(key, i)
        if j == i:
            continue
        first[key] = i  # the next repetition is compared with this one
        between = sentence[spans[j][1] : spans[i][0]]
        if i == j + 1 and between.strip() == "" and not (j > 0 and _content_key(tokens[j - 1]) == key):
            continue  # reduplication: `yavaş yavaş`, `ev ev` (but not `su su su`)
        if _CLAUSE_BREAK.search(fold(between)) or "en" in (fold(t.text) for t in tokens[max(j + 1, i - 2) : i]):
            continue
        return [Finding("tautology", f"says '{tokens[j].text}' twice in one clause ('{token.text}'): a tautology")]
    return []


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
            message = f"'{token.text}' should be written '{swapped}' (I and İ are different letters)"
            findings.append(Finding("spelling", message))
    return findings


def small_first_letter(sentence: str) -> list[Finding]:
    """A sentence that starts with a small letter (`ılık su …`); one that starts with a digit or a quote
    is left to the other checks."""
    first = sentence.lstrip()[:1]
    if first.isalpha() and first.islower():
        word = _SPAN.match(sentence.lstrip())
        shown = word.group(0) if word else first
        return [Finding("spelling", f"starts with a small letter: write '{capitalize(shown)}', not '{shown}'")]
    return []


def foreign_fragments(sentence: str) -> list[Finding]:
    """Text glued to a word after punctuation, mixed-case words, letters Turkish does not use."""
    findings = []
    glued = _GLUED.search(sentence)
    if glued:
        return [Finding("foreign_fragment", f"text glued to a word: '{_word_around(sentence, glued.start())}'")]
    for word in _SPAN.findall(sentence):
        if _INNER_CAPITAL.search(word) or (_NON_TURKISH_LETTER.search(word) and not word[:1].isupper()):
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
    """The (lemma, part of speech, derivations) readings of a content word: `yolcu` and `yolculuk` are
    two words. Empty for function words, names, unknown and light words, and possessed nouns, which
    usually name another thing of the same kind (`balkondan komşunun balkonuna`, `çocuk doktoru`)."""
    if token.proper or not token.analyses:
        return frozenset()
    if any(a.pos not in CONTENT_POS for a in token.analyses):
        return frozenset()  # some reading is a function word (`bir`, `çok`, `için`)
    if all(POSSESSIVES.intersection(a.morphemes) for a in token.analyses):
        return frozenset()
    key = frozenset((a.lemma, a.pos, tuple(m for m in a.morphemes if m in DERIVATIONS)) for a in token.analyses)
    if any(lemma in LIGHT_LEMMAS for lemma, _, _ in key):
        return frozenset()
    return key


def _complex(tokens: list[Token]) -> bool:
    """More than one verb (`Ev almak için kredi almalıyız`, a participle or converb and a finite verb) or a
    comparison (`Senin çantan benim çantama benzer`): a repeated word there usually says two different
    things, so only simple clauses are judged."""
    return sum(map(_verb_like, tokens)) > 1 or any(t.lemmas & COMPARISON_WORDS for t in tokens)


def _verb_like(token: Token) -> bool:
    """A verb form (finite, participle, converb, infinitive), unless the word is also a plain noun or
    adjective of its own (`öğretmen`, `düşünce`)."""
    verb = any(a.pos == "Verb" and a.morphemes[0] == "Verb" and len(a.morphemes) > 2 for a in token.analyses)
    plain = any(a.pos != "Verb" and len(a.morphemes) <= 2 for a in token.analyses)
    return verb and not plain


def _compound_modifier(tokens: list[Token], i: int) -> bool:
    """A bare noun before a possessed one: the first part of a compound (`incir ağacı`, `polis arabası`)."""
    if i + 1 >= len(tokens):
        return False
    bare = any(a.pos == "Noun" and a.morphemes == ("Noun", "A3sg") for a in tokens[i].analyses)
    return bare and any("P3sg" in a.morphemes or "P3pl" in a.morphemes for a in tokens[i + 1].analyses)


def _predicative(token: Token) -> bool:
    if fold(token.text) in PREDICATE_WORDS or token.lemmas & PREDICATE_WORDS:
        return True
    return any(a.pos == "Verb" or "Zero" in a.morphemes or "Cop" in a.morphemes for a in token.analyses)


def _word_around(sentence: str, index: int) -> str:
    start = sentence.rfind(" ", 0, index) + 1
    end = sentence.find(" ", index)
    return sentence[start : end if end != -1 else len(sentence)]
