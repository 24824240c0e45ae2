"""Turkish analysis: case folding, tokenisation, lemmas and grammar features through zeyrek.

Everything that needs to know Turkish goes through this module: the validator, the quality
metrics and checked generation. zeyrek (a port of Zemberek, MIT) runs offline; we call its
analyser object directly (its text helpers need NLTK downloads), silence its per-parse logging,
guard its crash on words with many candidate paths, work around its shared-state bug (see
`_patch_zeyrek_state_bug`) and cache every analysis.

    >>> from cefrtune.turkish import lemmas, fold
    >>> sorted(lemmas("kitabı"))
    ['kitap']
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass

LEVELS = ("A1", "A2", "B1", "B2", "C1")

_FOLD_UPPER = str.maketrans({"İ": "i", "I": "ı", "Â": "a", "Î": "i", "Û": "u", "â": "a", "î": "i", "û": "u"})
_WORD_RE = re.compile(r"[A-Za-zÇĞİÖŞÜÂÎÛçğıöşüâîû]+(?:['’][A-Za-zçğıöşüâîû]+)?")
_APOSTROPHES = ("'", "’")


def fold(text: str) -> str:
    """Turkish-correct lower case: İ->i, I->ı; circumflexed vowels lose the circumflex
    (zeyrek has no analysis for `rüzgâr`, but has one for `rüzgar`)."""
    return text.translate(_FOLD_UPPER).lower()


def capitalize(text: str) -> str:
    """Turkish-correct capital first letter: i->İ, ı->I (Python's str.upper writes I for i)."""
    head = {"i": "İ", "ı": "I"}.get(text[:1], text[:1].upper())
    return head + text[1:]


def tokenize(text: str) -> list[str]:
    """Word tokens of a sentence, keeping apostrophe suffixes (`İstanbul'a` is one token).
    Numbers and punctuation are dropped."""
    return _WORD_RE.findall(text)


@dataclass(frozen=True)
class Analysis:
    """One reading of a word: its lemma (verbs in the -mak/-mek form), part of speech and
    the zeyrek morpheme ids, in order."""

    lemma: str
    pos: str
    morphemes: tuple[str, ...]


@dataclass(frozen=True)
class Token:
    """A word token of a sentence with every reading zeyrek finds.

    `proper` is True for a capitalised name zeyrek does not know (`Ayşe`, `Zeynep'in`):
    such tokens are reported apart, not as unknown words."""

    text: str
    analyses: tuple[Analysis, ...]
    proper: bool

    @property
    def known(self) -> bool:
        return bool(self.analyses)

    @property
    def lemmas(self) -> frozenset[str]:
        return frozenset(a.lemma for a in self.analyses)


def analyse_sentence(sentence: str) -> list[Token]:
    """Tokenise a sentence and analyse every token (cached per word form)."""
    tokens = []
    for index, raw in enumerate(tokenize(sentence)):
        stem, has_apostrophe = _split_apostrophe(raw)
        capitalised = raw[:1].isupper()
        analyses = analyse_word(stem if has_apostrophe else raw)
        proper_readings = [a for a in analyses if "Prop" in a.morphemes]
        if not capitalised:
            proper = False
        elif has_apostrophe or not analyses:
            proper = True  # `Zeynep'in`, or a name zeyrek does not know
        elif index == 0:
            proper = len(proper_readings) == len(analyses)  # `Kitabı` starts a sentence: a common word
        else:
            proper = bool(proper_readings)
        tokens.append(Token(raw, analyses, proper))
    return tokens


def lemmas(word: str) -> frozenset[str]:
    """Every lemma zeyrek proposes for one word form (empty when it has no analysis)."""
    stem, has_apostrophe = _split_apostrophe(word)
    return frozenset(a.lemma for a in analyse_word(stem if has_apostrophe else word))


def lemma_forms(target: str) -> frozenset[str]:
    """The lemmas a target word may appear as: the word itself (folded), and, when the word
    is an infinitive (`gitmek`), itself as a verb lemma. A noun like `ev` stays `ev`."""
    folded = fold(target.strip())
    forms = {folded}
    for analysis in analyse_word(folded):
        if analysis.pos == "Verb" and "Inf1" in analysis.morphemes[-2:]:
            forms.add(analysis.lemma)
    return frozenset(forms)


def uses_word(sentence: str, target: str) -> bool:
    """True when some token of `sentence` has the target word as a lemma (inflection allowed:
    evde/evim/evler count for `ev`, gidiyorum/gitti for `gitmek`). A multi-word target
    (`hoş geldiniz`) must appear as consecutive tokens whose last one may be inflected."""
    return find_word(analyse_sentence(sentence), target) is not None


def find_word(tokens: list[Token], target: str) -> int | None:
    """Index of the first token that realises `target`, or None. A token realises a word when
    one of its readings is an inflection of it in its own sense: a derivation (`dağcılık` for
    `dağ`, `tuzlu` for `tuz`) or a homograph that another reading explains better (`yağdı`
    "it rained" for `yağ` "oil", `öğretmen` "teacher" for `öğretmek`) is not a use."""
    parts = target.split()
    if len(parts) > 1:
        folded_parts = [fold(p) for p in parts]
        for i in range(len(tokens) - len(parts) + 1):
            window = tokens[i : i + len(parts)]
            if all(fold(t.text) == p for t, p in zip(window[:-1], folded_parts[:-1])) and (
                fold(window[-1].text).startswith(folded_parts[-1][:-1] or folded_parts[-1])
                or folded_parts[-1] in window[-1].lemmas
            ):
                return i
        return None
    wanted = lemma_forms(target)
    folded_target = fold(target)
    # A derived target (`eğlenceli` = eğlence + -lI, `karıştırmak` = karışmak + causative) matches
    # its inflected forms (`eğlenceliydi`, `karıştırıyor`): the derivation is compared up to the
    # infinitive ending of a verb target.
    derived = [
        _derivation_head(a) for a in analyse_word(folded_target) if len(a.morphemes) > 2 and a.lemma not in wanted
    ]
    for i, token in enumerate(tokens):
        matching = [a for a in token.analyses if a.lemma in wanted]
        if matching and _own_sense(token, matching):
            return i
        if any(
            r.lemma == lemma and r.morphemes[: len(head)] == head for r in token.analyses for lemma, head in derived
        ):
            return i
        stem, _ = _split_apostrophe(token.text)
        if fold(stem) == folded_target:  # names and words zeyrek does not know
            return i
    return None


# Morphemes that make another word from a root (-CI, -lIk, -sAl, -CIk, -lAş, -lAn, -CA, ...): `dağcılık`
# is not a use of `dağ`, nor `zehirlenmek` of `zehir`. -lI and -sIz keep the noun's own meaning
# (`peynirli börek`, `şekersiz çay`), and verb voice, participles and infinitives stay uses of the verb.
DERIVATIONS = frozenset({"Agt", "Ness", "Related", "JustLike", "Dim", "Become", "Acquire", "FitFor", "Ly",
                         "Ordinal", "Distrib"})
# Readings that make a finite clause of a verb (`yağdı` = yağmak + past).
_VERBAL_NOUN = frozenset({"Inf2", "Inf3"})
_FINITE = frozenset({"Past", "Prog1", "Prog2", "Aor", "Fut", "Narr", "Imp", "Neces", "Opt", "Desr", "Cond"})


def _own_sense(token: Token, matching: list[Analysis]) -> bool:
    """Whether the readings of `token` that carry the target's lemma use it in its own sense."""
    plain = [a for a in matching if not DERIVATIONS.intersection(a.morphemes[1:])]
    if not plain:
        return False  # only derivations: `dağcılık`, `tuzlu`
    others = [a for a in token.analyses if a not in matching]
    # `yağdı`: the noun + copula reading ("it was oil") loses to a finite verb of another lemma.
    if all("Zero" in a.morphemes for a in plain) and any(
        a.pos == "Verb" and a.morphemes[0] == "Verb" and "Zero" not in a.morphemes and _FINITE.intersection(a.morphemes)
        for a in others
    ):
        return False
    # `öğretmen`: a word of its own (the bare form is a dictionary entry) beats a verbal noun with a
    # possessive ("your teaching").
    bare = fold(_split_apostrophe(token.text)[0])
    if any(a.lemma == bare and a.pos != "Verb" for a in others) and all(
        a.pos == "Verb" and _VERBAL_NOUN.intersection(a.morphemes) and not _FINITE.intersection(a.morphemes)
        for a in plain
    ):
        return False
    return True


def _derivation_head(analysis: Analysis) -> tuple[str, tuple[str, ...]]:
    """(lemma, morphemes) of a derived word, a verb's cut before its infinitive ending."""
    morphemes = analysis.morphemes
    if "Inf1" in morphemes:
        morphemes = morphemes[: morphemes.index("Inf1")]
    return analysis.lemma, morphemes


@functools.lru_cache(maxsize=200_000)
def analyse_word(word: str) -> tuple[Analysis, ...]:
    """All readings of one word form (no apostrophe). Cached; never raises."""
    folded = fold(word)
    if not folded:
        return ()
    try:
        results = _analyzer().analyzer.analyze(folded)
    except (AttributeError, IndexError, KeyError, ValueError, RecursionError):
        # zeyrek crashes on words with very many candidate paths (upstream issue #24).
        return ()
    readings = []
    for result in results:
        if result is None:
            continue
        item = result.dict_item
        morphemes = tuple(m[0].id_ for m in result.morphemes)
        pos = item.primary_pos.value if item.primary_pos is not None else "Unk"
        if item.secondary_pos is not None and item.secondary_pos.value == "Prop":
            morphemes = ("Prop",) + morphemes
        readings.append(Analysis(lemma=fold(item.lemma), pos=pos, morphemes=morphemes))
    readings += _missing_finite_readings(folded, readings)
    return tuple(dict.fromkeys(readings))


def _missing_finite_readings(folded: str, readings: list[Analysis]) -> list[Analysis]:
    """Finite verb readings zeyrek 0.1.3 misses: -mAlI on back-vowel stems (`okumalısın`) or
    without a person ending (`uymalı`), and the bare third-person future (`olacak`), which it
    reads only as a participle."""
    extra = []
    if not any("Neces" in r.morphemes for r in readings):
        extra += list(_necessity_fallback(folded))
    for r in readings:
        if r.pos == "Verb" and r.morphemes[-2:] == ("FutPart", "Adj"):
            extra.append(Analysis(r.lemma, "Verb", r.morphemes[:-2] + ("Fut", "A3sg")))
    return extra


_NECES_RE = re.compile(r"^(.+?)(malı|meli)(yım|yim|sın|sin|yız|yiz|sınız|siniz|lar|ler|dır|dir)?$")
_NECES_PERSON = {"yım": "A1sg", "yim": "A1sg", "sın": "A2sg", "sin": "A2sg", "yız": "A1pl", "yiz": "A1pl",
                 "sınız": "A2pl", "siniz": "A2pl", "lar": "A3pl", "ler": "A3pl", "dır": "A3sg", "dir": "A3sg"}


def _necessity_fallback(folded: str) -> tuple[Analysis, ...]:
    """zeyrek 0.1.3 has no necessity reading for back-vowel stems (`okumalısın`, `almalıyım`
    get none, `gitmelisin` is fine): read such forms as verb + -mAlI when the stem is a verb."""
    match = _NECES_RE.match(folded)
    if not match:
        return ()
    stem, suffix, person = match.groups()
    infinitive = stem + ("mak" if suffix == "malı" else "mek")
    try:
        verb = [
            r
            for r in _analyzer().analyzer.analyze(infinitive)
            if r is not None and r.dict_item.primary_pos.value == "Verb"
        ]
    except (AttributeError, IndexError, KeyError, ValueError, RecursionError):
        return ()
    if not verb:
        return ()
    return (
        Analysis(
            lemma=fold(verb[0].dict_item.lemma),
            pos="Verb",
            morphemes=("Verb", "Neces", _NECES_PERSON.get(person, "A3sg")),
        ),
    )


def _split_apostrophe(word: str) -> tuple[str, bool]:
    for mark in _APOSTROPHES:
        if mark in word:
            return word.split(mark, 1)[0], True
    return word, False


@functools.lru_cache(maxsize=1)
def _analyzer():
    # zeyrek logs a warning for every accepted parse; some versions call basicConfig at import.
    logging.getLogger("zeyrek").setLevel(logging.ERROR)
    root_handlers = list(logging.getLogger().handlers)
    import zeyrek

    logging.getLogger().handlers = root_handlers
    for name in ("zeyrek", "zeyrek.rulebasedanalyzer", "zeyrek.morphotactics", "zeyrek.lexicon"):
        logging.getLogger(name).setLevel(logging.ERROR)
    _patch_zeyrek_state_bug()
    return zeyrek.MorphAnalyzer()


def _patch_zeyrek_state_bug() -> None:
    """zeyrek 0.1.3 mutates shared phonetic-attribute sets in place: the set a stem transition
    owns is handed to the initial search path, and `calculate_phonetic_attributes` returns the
    same cached set to every caller. Analysing `gelecek` then breaks `geliyor` for the rest of
    the process. Give every caller its own copy."""
    from zeyrek import attributes, morphotactics, rulebasedanalyzer

    if getattr(morphotactics, "_cefrtune_patched", False):
        return
    cached = attributes.calculate_phonetic_attributes

    def calculate_copy(word, predecessor_attrs=None):
        return set(cached(word, predecessor_attrs))

    morphotactics.calculate_phonetic_attributes = calculate_copy
    rulebasedanalyzer.calculate_phonetic_attributes = calculate_copy
    search_path = morphotactics.SearchPath
    original_init = search_path.__init__

    def init_with_own_attrs(self, tail, current_state, transitions, phonetic_attributes, terminal):
        original_init(self, tail, current_state, transitions, set(phonetic_attributes), terminal)

    search_path.__init__ = init_with_own_attrs
    morphotactics._cefrtune_patched = True
