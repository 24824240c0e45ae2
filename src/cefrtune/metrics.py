"""Quality metrics a teacher trusts, computed on any set of generated (or reference) lists.

Definitions (docs/turkish-cefr.md): format_valid, target_word_used (by lemma), misplaced_words,
unknown_token_rate (proper nouns counted apart), above_level_vocab_rate (project word lists of
the level and below; wordfreq's Turkish frequency band for words no list has),
above_level_grammar_rate, distinct_2, repeated_sentence_rate, copied_from_train_rate,
sentence_findings_rate (tautology, no predicate, spelling, glued fragments, list numbers: see
cefrtune.sentence_checks) with its count per kind. `score`
returns the aggregate figures and a per-item breakdown naming which sentence failed and why;
`check_sentence` is the per-sentence verdict that checked generation uses.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cefrtune.levels import MORPHEME_LEVEL, VOICES, level_index, sentence_grammar, word_level, word_zipf, wordlist
from cefrtune.sentence_checks import sentence_findings
from cefrtune.turkish import LEVELS, analyse_word, find_word, fold, tokenize

# The version of these checks and figures: cached baseline results (cefrtune.baseline_cache) are
# keyed by it. Bump it whenever a check, a figure's definition or a word list's use changes.
METRICS_VERSION = 1
CONTENT_POS = {"Noun", "Verb", "Adj", "Adv"}
# A lemma no project list has counts as within level when it is at least this frequent (Zipf).
FREQUENCY_FLOOR = {"A1": 4.5, "A2": 4.0, "B1": 3.5, "B2": 3.0, "C1": 2.5}


@dataclass
class SentenceCheck:
    """Every check of one sentence; `passed` when none failed."""

    index: int
    word: str
    sentence: str | None
    target_word_used: bool = False
    unknown_tokens: list[str] = field(default_factory=list)
    proper_nouns: list[str] = field(default_factory=list)
    above_level_grammar: list[str] = field(default_factory=list)
    above_level_vocab: list[str] = field(default_factory=list)
    duplicate: bool = False
    copied_from_train: bool = False
    findings: list = field(default_factory=list)
    """What makes it unusable beyond morphology (cefrtune.sentence_checks): tautology, no predicate, ..."""
    tokens: int = 0
    content_lemmas: int = 0

    @property
    def reasons(self) -> list[str]:
        if self.sentence is None:
            return ["missing"]
        reasons = []
        if not self.target_word_used:
            reasons.append(f"does not use '{self.word}'")
        if self.unknown_tokens:
            reasons.append("unknown word(s): " + ", ".join(self.unknown_tokens))
        if self.above_level_grammar:
            reasons.append("grammar above level: " + "; ".join(self.above_level_grammar))
        if self.above_level_vocab:
            reasons.append("vocabulary above level: " + ", ".join(self.above_level_vocab))
        reasons.extend(str(f) for f in self.findings)
        if self.duplicate:
            reasons.append("repeats another sentence")
        if self.copied_from_train:
            reasons.append("copied verbatim from the training data")
        return reasons

    @property
    def passed(self) -> bool:
        return not self.reasons

    def to_json(self) -> dict:
        return {
            "index": self.index + 1,
            "word": self.word,
            "sentence": self.sentence,
            "passed": self.passed,
            "reasons": self.reasons,
        }


def sentence_key(sentence: str) -> str:
    return " ".join(fold(t) for t in tokenize(sentence))


def check_sentence(sentence: str | None, word: str, level: str, index: int = 0,
                   train_keys: frozenset[str] | set[str] = frozenset(), seen_keys: set[str] | None = None,
                   target_words: list[str] | None = None) -> SentenceCheck:
    """Check one sentence. `seen_keys` (sentences accepted so far) marks duplicates;
    `train_keys` marks copies from the training data."""
    check = SentenceCheck(index, word, sentence)
    if sentence is None:
        return check
    grammar = sentence_grammar(sentence)
    tokens = list(grammar.tokens)
    check.tokens = len(tokens)
    at = find_word(tokens, word)
    check.target_word_used = at is not None
    given = {fold(w) for w in (target_words or [word])}
    for i, token in enumerate(tokens):
        if token.proper:
            check.proper_nouns.append(token.text)
        elif not token.known:
            check.unknown_tokens.append(token.text)
        else:
            candidates = _content_candidates(token)
            if not candidates:
                continue
            check.content_lemmas += 1
            if i != at and not (token.lemmas & given) and not any(_vocab_within(c, level) for c in candidates):
                check.above_level_vocab.append(f"{token.text} ({min(token.lemmas)})")
    # The given word's own voice is not grammar the sentence chose: `yorulmak` is yormak + passive to the
    # analyser, and a teacher who asks for it gets `yoruldum`.
    given_voices = {MORPHEME_LEVEL[m][1] for a in analyse_word(fold(word)) for m in a.morphemes if m in VOICES}
    check.above_level_grammar = [f"{f.word}: {f.name} ({f.level})" for f in grammar.above(level)
                                 if not (at is not None and f.word == tokens[at].text and f.name in given_voices)]
    check.findings = sentence_findings(sentence, tokens)
    key = sentence_key(sentence)
    check.copied_from_train = key in train_keys
    if seen_keys is not None:
        check.duplicate = key in seen_keys
    return check


def _content_candidates(token) -> list[str]:
    """Words a content token may be judged by: its lemmas and its own form (a derived word like
    `önemli` may be listed while its root `önem` is a later word). Empty for function words."""
    if any(a.pos not in CONTENT_POS for a in token.analyses):
        return []  # some reading is a function word (`için`, `bir`): never counted as vocabulary
    return sorted({a.lemma for a in token.analyses} | {fold(token.text.split("'")[0])})


def _vocab_within(word: str, level: str) -> bool:
    """Within level: listed at this level or below; or listed nowhere and at least as frequent
    as the level's floor. A word listed only at a higher level is above."""
    listed = word_level(word)
    if listed is not None:
        return level_index(listed) <= level_index(level)
    if not any(wordlist(lvl) for lvl in LEVELS):
        return True  # no project lists shipped: nothing to judge by
    pos = "verb" if word.endswith(("mak", "mek")) else "noun"
    return word_zipf(word, pos) >= FREQUENCY_FLOOR[level]


def score(items: list[dict], train_sentences: list[str] | None = None) -> dict:
    """Aggregate metrics and per-item breakdown. Each item: {level, words, sentences
    (list with None for missing), format_valid (bool), issues (list of str)}."""
    train_keys = {sentence_key(s) for s in train_sentences or []}
    all_keys: Counter[str] = Counter()
    per_item = []
    totals = Counter()
    finding_kinds: Counter[str] = Counter()
    distinct2 = []
    for item in items:
        words, level = item["words"], item["level"]
        sentences = list(item["sentences"]) + [None] * (len(words) - len(item["sentences"]))
        checks = []
        for i, word in enumerate(words):
            check = check_sentence(sentences[i], word, level, i, train_keys, None, words)
            checks.append(check)
        # misplaced: target word i missing from sentence i but present in another sentence
        misplaced = []
        analysed = {j: sentence_grammar(s).tokens for j, s in enumerate(sentences) if s}
        for i, check in enumerate(checks):
            if not check.target_word_used:
                elsewhere = [
                    j + 1 for j, toks in analysed.items() if j != i and find_word(list(toks), words[i]) is not None
                ]
                if elsewhere:
                    misplaced.append({"word": words[i], "expected": i + 1, "found_in": elsewhere})
        present = [c for c in checks if c.sentence is not None]
        for c in present:
            all_keys[sentence_key(c.sentence)] += 1
        bigrams = [
            tuple(pair) for c in present for pair in zip(tokenize(fold(c.sentence)), tokenize(fold(c.sentence))[1:])
        ]
        if bigrams:
            distinct2.append(len(set(bigrams)) / len(bigrams))
        totals["items"] += 1
        totals["format_valid"] += bool(item.get("format_valid", True))
        totals["slots"] += len(words)
        totals["present"] += len(present)
        totals["target_word_used"] += sum(c.target_word_used for c in checks)
        totals["misplaced"] += len(misplaced)
        totals["tokens"] += sum(c.tokens for c in present)
        totals["unknown"] += sum(len(c.unknown_tokens) for c in present)
        totals["proper"] += sum(len(c.proper_nouns) for c in present)
        totals["content"] += sum(c.content_lemmas for c in present)
        totals["above_vocab"] += sum(len(c.above_level_vocab) for c in present)
        totals["above_grammar"] += sum(bool(c.above_level_grammar) for c in present)
        totals["copied"] += sum(c.copied_from_train for c in present)
        totals["with_findings"] += sum(bool(c.findings) for c in present)
        finding_kinds.update(f.kind for c in present for f in c.findings)
        per_item.append({
            "level": level,
            "words": words,
            "format_valid": bool(item.get("format_valid", True)),
            "format_issues": item.get("issues", []),
            "misplaced_words": misplaced,
            "sentences": [c.to_json() for c in checks],
        })
    repeated = sum(count for count in all_keys.values() if count > 1)
    # Repeated sentences inside the set make each repeat after the first a failure.
    seen: set[str] = set()
    for entry in per_item:
        for s in entry["sentences"]:
            if s["sentence"] is None:
                continue
            key = sentence_key(s["sentence"])
            if key in seen:
                s["reasons"].append("repeats another sentence")
                s["passed"] = False
            seen.add(key)
    passed = sum(s["passed"] for e in per_item for s in e["sentences"])

    def rate(a: str, b: str) -> float:
        return round(totals[a] / totals[b], 4) if totals[b] else 0.0

    return {
        "items": totals["items"],
        "sentences": totals["present"],
        "format_valid": rate("format_valid", "items"),
        "target_word_used": rate("target_word_used", "slots"),
        "misplaced_words": totals["misplaced"],
        "unknown_token_rate": round(totals["unknown"] / max(totals["tokens"] - totals["proper"], 1), 4),
        "proper_noun_rate": rate("proper", "tokens"),
        "above_level_vocab_rate": rate("above_vocab", "content"),
        "above_level_grammar_rate": rate("above_grammar", "present"),
        "distinct_2": round(sum(distinct2) / len(distinct2), 4) if distinct2 else 0.0,
        "repeated_sentence_rate": round(repeated / totals["present"], 4) if totals["present"] else 0.0,
        "copied_from_train_rate": rate("copied", "present"),
        "sentence_findings_rate": rate("with_findings", "present"),
        "sentence_findings": dict(sorted(finding_kinds.items())),
        "pass_rate": round(passed / totals["slots"], 4) if totals["slots"] else 0.0,
        "per_item": per_item,
    }
