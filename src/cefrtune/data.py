"""The data stage: validate list-format datasets, describe them, and split them.

    cefrtune data validate [FILE...] [--json]      # no FILE: the shipped datasets
    cefrtune data stats src/cefrtune/datasets/a1.jsonl [--model gemma-3-270m]
    cefrtune data split src/cefrtune/datasets/a1.jsonl --out runs/split [--eval-fraction 0.1 --seed 42]

`validate` reports every problem in one pass, each with `file:line`, the field and what is wrong;
errors make the data unusable for training; warnings (grammar above the level, near-duplicate sentences,
`hala` for `hâlâ` and similar spellings, one grammar feature filling too much of a level) are for review.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cefrtune.examples import DataError, Example, Problem, load_examples, parse_record, read_records, write_examples
from cefrtune.levels import SENTENCE_LENGTH, level_index, sentence_grammar
from cefrtune.sentence_checks import sentence_findings
from cefrtune.turkish import LEVELS, analyse_sentence, find_word, fold, tokenize

# After replacing the target word, one sentence skeleton may cover at most this share of sentences.
FILLER_PATTERN_LIMIT = 0.02
# Two sentences of one level are near-duplicates when at least this share of their words is common
# (Jaccard overlap of the folded word sets: "Türkçe biraz zor ama çok güzel bir dil." and "Türkçe zor ama
# çok güzel bir dil." share 7 of 8). Exact repeats are the duplicate check's; shorter sentences than
# NEAR_DUPLICATE_MIN_WORDS overlap by chance and are left out.
NEAR_DUPLICATE_OVERLAP = 0.5
NEAR_DUPLICATE_MIN_WORDS = 3
# The levels whose sentences are compared: all of them.
NEAR_DUPLICATE_LEVELS = LEVELS
# One grammar feature of a level's own (B2's -DIkçA, A2's -mAlI) may be in at most this share of the
# level's sentences: a level that leans on one feature bends its sentences to fit it.
GRAMMAR_FEATURE_CAP = 0.2
GRAMMAR_FEATURE_CAP_LEVELS = ("A2", "B1", "B2", "C1")
# Features the cap leaves alone because a level's register needs them everywhere, not because a writer
# reaches for them: participles and the verbal noun build any subordinate clause, the aorist states habits
# and facts, and formal -DIr (-dir, -mIştIr, -mAktAdIr) is the copula of the written register C1 is in.
GRAMMAR_FEATURE_CAP_EXEMPT = frozenset({"participle -An", "participle -DIK", "verbal noun -mA", "aorist -Ir/-Ar",
                                        "formal -DIr"})


@dataclass
class ValidationReport:
    problems: list[Problem] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def validate(
    paths: list[str | Path],
    n: int = 10,
    near_duplicate_overlap: float = NEAR_DUPLICATE_OVERLAP,
    near_duplicate_levels: tuple[str, ...] = NEAR_DUPLICATE_LEVELS,
    grammar_feature_cap: float = GRAMMAR_FEATURE_CAP,
) -> ValidationReport:
    """Check every example of every file; sentences must be unique across all files given and not
    near-duplicates of another sentence of their level; no own-level grammar feature may fill more than
    `grammar_feature_cap` of a level's sentences."""
    report = ValidationReport()
    examples: list[Example] = []
    for path in paths:
        try:
            records, problems = read_records(path)
        except ValueError as err:
            report.problems.append(Problem(str(path), "file", "unreadable_file", str(err)))
            continue
        report.problems.extend(problems)
        for origin, record in records:
            example, record_problems = parse_record(record, origin, n)
            report.problems.extend(record_problems)
            if example is not None:
                examples.append(example)
    proper_nouns: Counter[str] = Counter()
    first_seen: dict[str, str] = {}
    skeletons: Counter[str] = Counter()
    skeleton_origin: dict[str, str] = {}
    lengths: list[int] = []
    for example in examples:
        report.problems.extend(_check_example(example, proper_nouns, lengths))
        for i, (word, sentence) in enumerate(zip(example.words, example.sentences)):
            key = _sentence_key(sentence)
            where = f"{example.origin} sentences[{i}]"
            if key in first_seen:
                report.problems.append(
                    Problem(
                        example.origin,
                        f"sentences[{i}]",
                        "duplicate_sentence",
                        f"'{sentence}' repeats {first_seen[key]}",
                    )
                )
            else:
                first_seen[key] = where
            skeleton = _skeleton(sentence, word)
            skeletons[skeleton] += 1
            skeleton_origin.setdefault(skeleton, where)
    total_sentences = sum(len(e.sentences) for e in examples)
    limit = max(2, math.floor(FILLER_PATTERN_LIMIT * total_sentences))
    for skeleton, count in skeletons.most_common():
        if count <= limit:
            break
        report.problems.append(
            Problem(
                skeleton_origin[skeleton],
                "sentences",
                "filler_pattern",
                f"the pattern '{skeleton}' covers {count} of {total_sentences} sentences (limit {limit}); "
                "vary the sentences",
            )
        )
    report.problems.extend(_circumflex_problems(examples))
    pairs_by_level = _near_duplicate_problems(examples, report.problems, near_duplicate_overlap, near_duplicate_levels)
    shares = _grammar_feature_problems(examples, report.problems, grammar_feature_cap)
    report.summary = _summary(examples, report.problems, lengths, proper_nouns)
    report.summary["near_duplicate_pairs"] = pairs_by_level
    report.summary["top_grammar_feature_share"] = shares
    return report


def _check_example(example: Example, proper_nouns: Counter, lengths: list[int]) -> list[Problem]:
    problems: list[Problem] = []
    low, high = SENTENCE_LENGTH[example.level]
    seen: dict[str, int] = {}
    level_used = False
    for i, (word, sentence) in enumerate(zip(example.words, example.sentences)):
        where = f"sentences[{i}]"
        key = _sentence_key(sentence)
        if key in seen:
            problems.append(
                Problem(example.origin, where, "duplicate_sentence", f"same sentence as sentences[{seen[key]}]")
            )
        seen.setdefault(key, i)
        grammar = sentence_grammar(sentence)
        tokens = list(grammar.tokens)
        lengths.append(len(tokens))
        if find_word(tokens, word) is None:
            problems.append(
                Problem(
                    example.origin,
                    where,
                    "target_word_missing",
                    f"does not use target word {i + 1} '{word}' (no token has it as lemma): '{sentence}'",
                )
            )
        for token in tokens:
            if token.proper:
                proper_nouns[token.text.split("'")[0].split("’")[0]] += 1
            elif not token.known:
                problems.append(
                    Problem(
                        example.origin,
                        where,
                        "unknown_token",
                        f"'{token.text}' is not a Turkish word the analyser knows (typo or invented form?): "
                        f"'{sentence}'",
                    )
                )
        for finding in sentence_findings(sentence, tokens):
            problems.append(Problem(example.origin, where, finding.kind, f"{finding.message}: '{sentence}'"))
        markup = MARKUP.findall(sentence)
        if markup:
            problems.append(
                Problem(example.origin, where, "markup",
                        f"holds {', '.join(dict.fromkeys(markup))}, not sentence text "
                        f"(HTML, template or code?): '{sentence}'")
            )
        english = english_tokens(tokens)
        if len(english) >= 2 and 2 * len(english) >= len(tokens):
            problems.append(
                Problem(example.origin, where, "not_turkish",
                        f"reads as English ({', '.join(english[:5])}), not Turkish: '{sentence}'")
            )
        if not low <= len(tokens) <= high:
            problems.append(
                Problem(
                    example.origin,
                    where,
                    "sentence_length",
                    f"{len(tokens)} words; {example.level} sentences have {low}-{high}: '{sentence}'",
                )
            )
        for feature in grammar.above(example.level):
            problems.append(
                Problem(
                    example.origin,
                    where,
                    "grammar_above_level",
                    f"'{feature.word}' uses {feature.name} ({feature.level}), above {example.level}: '{sentence}'",
                    severity="warning",
                )
            )
        level_used = level_used or grammar.uses(example.level)
    if level_index(example.level) >= level_index("B1") and not level_used:
        problems.append(
            Problem(
                example.origin,
                "sentences",
                "no_level_grammar",
                f"no sentence uses a grammar feature of {example.level}",
                severity="warning",
            )
        )
    return problems


def _sentence_key(sentence: str) -> str:
    return " ".join(fold(t) for t in tokenize(sentence))


def _skeleton(sentence: str, word: str) -> str:
    """The sentence with its target word blanked: the pattern the filler check counts."""
    tokens = analyse_sentence(sentence)
    index = find_word(tokens, word)
    return " ".join("_" if i == index else fold(t.text) for i, t in enumerate(tokens))


def _summary(examples: list[Example], problems: list[Problem], lengths: list[int], proper_nouns: Counter) -> dict:
    by_kind = defaultdict(Counter)
    for p in problems:
        by_kind[p.severity][p.kind] += 1
    levels = Counter(e.level for e in examples)
    return {
        "examples": len(examples),
        "sentences": sum(len(e.sentences) for e in examples),
        "examples_by_level": {lvl: levels[lvl] for lvl in LEVELS if levels[lvl]},
        "distinct_target_words": len({fold(w) for e in examples for w in e.words}),
        "errors": sum(by_kind["error"].values()),
        "warnings": sum(by_kind["warning"].values()),
        "errors_by_kind": dict(by_kind["error"]),
        "warnings_by_kind": dict(by_kind["warning"]),
        "proper_nouns": dict(proper_nouns.most_common()),
        "sentence_words": _length_stats(lengths),
    }


def _length_stats(values: list[int]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 2),
        "p95": ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)],
    }


# Characters and entities no sentence of the data needs: HTML tags and entities, template braces, code.
MARKUP = re.compile(r"</?[A-Za-z][^>]*>|&[A-Za-z]+;|&#\d+;|[<>{}\[\]\\|@#$^*_=~`]")

# An English word is far more frequent in English than in Turkish (zipf, wordfreq): "the", "have",
# "school". Checked on the shipped data (9000 sentences): none has two or more such words.
ENGLISH_MARGIN = 1.0


def english_tokens(tokens) -> list[str]:
    """The tokens of a sentence that are English words rather than Turkish ones."""
    from wordfreq import zipf_frequency

    found = []
    for token in tokens:
        word = getattr(token, "text", token).lower()
        english = zipf_frequency(word, "en")
        if english >= 3 and english - zipf_frequency(word, "tr") >= ENGLISH_MARGIN:
            found.append(word)
    return found


# ---- near-duplicates, circumflex spellings, grammar-feature shares ----------------------------


def _near_duplicate_problems(examples: list[Example], problems: list[Problem], overlap: float,
                             levels: tuple[str, ...]) -> dict[str, int]:
    """Add one warning per near-duplicate pair of sentences of one level; return the pairs per level."""
    pairs_by_level: dict[str, int] = {}
    for level in LEVELS:
        if level not in levels:
            continue
        sentences = [(f"{e.origin} sentences[{i}]", e.origin, i, s)
                     for e in examples if e.level == level for i, s in enumerate(e.sentences)]
        if not sentences:
            continue
        pairs = near_duplicate_pairs([s for *_, s in sentences], overlap)
        pairs_by_level[level] = len(pairs)
        for a, b, share in pairs:
            where_a, _, _, sentence_a = sentences[a]
            _, origin_b, index_b, sentence_b = sentences[b]
            problems.append(Problem(
                origin_b, f"sentences[{index_b}]", "near_duplicate",
                f"'{sentence_b}' shares {share:.0%} of its words with {where_a} '{sentence_a}' "
                f"(limit {overlap:.0%}); rewrite one of them",
                severity="warning",
            ))
    return pairs_by_level


def near_duplicate_pairs(sentences: list[str], overlap: float = NEAR_DUPLICATE_OVERLAP,
                         min_words: int = NEAR_DUPLICATE_MIN_WORDS) -> list[tuple[int, int, float]]:
    """Index pairs (i < j) of sentences whose folded word sets overlap by at least `overlap`
    (Jaccard), with the overlap. Exact repeats are left to the duplicate check."""
    word_sets = [frozenset(fold(t) for t in tokenize(s)) for s in sentences]
    by_word: dict[str, list[int]] = defaultdict(list)
    for index, words in enumerate(word_sets):
        if len(words) >= min_words:
            for word in words:
                by_word[word].append(index)
    found = []
    for j, words in enumerate(word_sets):
        if len(words) < min_words:
            continue
        common: Counter[int] = Counter()
        for word in words:
            common.update(i for i in by_word[word] if i < j)
        for i, shared in common.items():
            # Jaccard >= overlap needs shared >= overlap * |union| >= overlap * max(|A|, |B|).
            if shared < overlap * max(len(words), len(word_sets[i])):
                continue
            share = shared / len(words | word_sets[i])
            if share >= overlap and _sentence_key(sentences[i]) != _sentence_key(sentences[j]):
                found.append((i, j, share))
    return sorted(found)


# Bare spellings that usually stand for a circumflexed word with another meaning: the form (`hala`) or stem
# (Turkish lower case, circumflex kept) and what to write instead.
CIRCUMFLEX_CONFUSIONS = {
    "hala": "'hala' is the aunt; for 'still' write 'hâlâ'",
    "hakim": "write 'hâkim' (judge, dominant) with a circumflex",
    "aşık": "write 'âşık' (in love) with a circumflex; 'aşık' is the knucklebone",
    "adetler": "write 'âdet' (custom) with a circumflex; 'adet' is a count",
}


def _circumflex_problems(examples: list[Example]) -> list[Problem]:
    """Warn about `hala` written for `hâlâ` and similar spellings that change the meaning.
    `hala` is left alone where it is the aunt: after a name (`Ayşe hala`) or before kızı/oğlu."""
    problems = []
    for example in examples:
        for i, sentence in enumerate(example.sentences):
            tokens = analyse_sentence(sentence)
            for k, word in enumerate(t.text for t in tokens):
                low = word.replace("İ", "i").replace("I", "ı").lower().split("'")[0].split("’")[0]
                for bare, why in CIRCUMFLEX_CONFUSIONS.items():
                    if not (low == bare if bare == "hala" else low.startswith(bare)):
                        continue
                    if bare == "hala" and _aunt_context(tokens, k):
                        continue
                    problems.append(Problem(
                        example.origin, f"sentences[{i}]", "circumflex_spelling",
                        f"'{word}': {why}: '{sentence}'", severity="warning",
                    ))
    return problems


def _aunt_context(tokens: list, k: int) -> bool:
    after = fold(tokens[k + 1].text) if k + 1 < len(tokens) else ""
    return (k > 0 and tokens[k - 1].proper) or after.startswith(("kız", "oğl"))


def _grammar_feature_problems(examples: list[Example], problems: list[Problem], cap: float) -> dict[str, dict]:
    """Warn when one grammar feature of a level's own is in more than `cap` of the level's sentences;
    return each level's most used own-level feature and its share."""
    top: dict[str, dict] = {}
    for level in LEVELS:
        sentences = [s for e in examples if e.level == level for s in e.sentences]
        if not sentences:
            continue
        counts: Counter[str] = Counter()
        first: dict[str, str] = {}
        for example in (e for e in examples if e.level == level):
            for i, sentence in enumerate(example.sentences):
                names = {f.name for f in sentence_grammar(sentence).features if f.level == level}
                counts.update(names)
                for name in names:
                    first.setdefault(name, example.origin)
        capped = [(name, c) for name, c in counts.most_common() if name not in GRAMMAR_FEATURE_CAP_EXEMPT]
        if capped:
            name, count = capped[0]
            top[level] = {"feature": name, "share": round(count / len(sentences), 3)}
        if level not in GRAMMAR_FEATURE_CAP_LEVELS:
            continue
        for name, count in capped:
            if count > cap * len(sentences):
                problems.append(Problem(
                    first[name], "sentences", "grammar_feature_share",
                    f"{name} is in {count} of {len(sentences)} {level} sentences ({count / len(sentences):.0%}; "
                    f"cap {cap:.0%}); vary the grammar", severity="warning",
                ))
    return top


# ---- split --------------------------------------------------------------------------------


def split(
    path: str | Path, out_dir: str | Path, eval_fraction: float = 0.1, seed: int = 42, n: int = 10
) -> tuple[Path, Path]:
    """Deterministic train/eval split by seed, seed-style JSON files, no eval sentence in train.

    Writes `<out>/training_data_<level>_list_format_{train,eval}.json` and returns their paths."""
    examples = load_examples(path, n=n)
    train, evaluation = split_examples(examples, eval_fraction, seed)
    level = "_".join(sorted({e.level.lower() for e in examples}, key=lambda lvl: LEVELS.index(lvl.upper())))
    out_dir = Path(out_dir)
    train_path = out_dir / f"training_data_{level}_list_format_train.json"
    eval_path = out_dir / f"training_data_{level}_list_format_eval.json"
    write_examples(train_path, train, as_json_list=True)
    write_examples(eval_path, evaluation, as_json_list=True)
    return train_path, eval_path


def split_examples(
    examples: list[Example], eval_fraction: float = 0.1, seed: int = 42
) -> tuple[list[Example], list[Example]]:
    """Shuffle with `seed`, hold out round(len * eval_fraction) examples (at least one), and drop
    from train any example that shares a sentence with the eval set."""
    if not 0 < eval_fraction < 1:
        raise DataError(f"eval_fraction must be between 0 and 1, got {eval_fraction}")
    if len(examples) < 2:
        raise DataError(f"need at least 2 examples to split, got {len(examples)}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(examples) - 1, max(1, round(len(examples) * eval_fraction)))
    eval_ids = set(order[:n_eval])
    evaluation = [examples[i] for i in sorted(eval_ids)]
    eval_sentences = {_sentence_key(s) for e in evaluation for s in e.sentences}
    train = [
        examples[i]
        for i in sorted(set(order) - eval_ids)
        if not any(_sentence_key(s) in eval_sentences for s in examples[i].sentences)
    ]
    return train, evaluation




# ---- word lists ---------------------------------------------------------------------------

POS_TAGS = {"noun", "verb", "adj", "adv", "pron", "num", "det", "postp", "conj", "interj", "ques"}
def check_wordlists(folder: str | Path | None = None, write: bool = False) -> dict:
    """Check the word lists (datasets/wordlists/<level>.tsv): known POS tags, each word at one level only, every word
    known to the analyser, and frequency falling with the level. With `write`, (re)compute the
    zipf column in place. Returns per-level counts and median Zipf plus the problems found."""
    import csv

    from cefrtune.resources import data_dir
    from cefrtune.turkish import analyse_word

    folder = Path(folder) if folder else data_dir() / "wordlists"
    seen: dict[str, str] = {}
    result: dict = {"levels": {}, "problems": []}
    for level in LEVELS:
        path = folder / f"{level.lower()}.tsv"
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        zipfs = []
        for lineno, row in enumerate(rows, start=2):
            word, pos = (row.get("word") or "").strip(), (row.get("pos") or "").strip()
            where = f"{path}:{lineno}"
            if not word:
                result["problems"].append(f"{where}: empty word")
                continue
            if pos not in POS_TAGS:
                result["problems"].append(
                    f"{where}: '{word}' has part of speech '{pos}'; use one of {', '.join(sorted(POS_TAGS))}"
                )
            key = fold(word)
            if key in seen:
                result["problems"].append(
                    f"{where}: '{word}' is already a {seen[key]} word; each word belongs to one level"
                )
            seen.setdefault(key, level)
            if not all(analyse_word(part) for part in word.split()):
                result["problems"].append(f"{where}: '{word}' is unknown to the analyser")
            zipf = wordlist_zipf(word, pos)
            # Blank: below wordfreq's Turkish list (Zipf 3.0) in the dictionary form and its common inflections.
            row["zipf"] = f"{zipf:.2f}" if zipf else ""
            zipfs.append(zipf)
        if write:
            text = "word\tpos\tzipf\n" + "".join(
                f"{r['word'].strip()}\t{r['pos'].strip()}\t{r['zipf']}\n" for r in rows if r.get("word", "").strip()
            )
            from cefrtune.files import write_text_atomic

            write_text_atomic(path, text)
        known = [z for z in zipfs if z]
        result["levels"][level] = {"words": len(rows),
                                   "mean_zipf": round(statistics.fmean(known), 2) if known else None,
                                   "median_zipf": round(statistics.median(zipfs), 2) if zipfs else None,
                                   "below_wordfreq": len(zipfs) - len(known)}
    # Medians count a word below wordfreq's list as rarer than every listed one, which it is.
    medians = [v["median_zipf"] for v in result["levels"].values() if v["median_zipf"] is not None]
    result["frequency_falls_with_level"] = all(a > b for a, b in zip(medians, medians[1:]))
    return result


def wordlist_zipf(word: str, pos: str) -> float:
    """wordfreq's Turkish Zipf value of a list word (levels.word_zipf); when wordfreq lacks the dictionary form
    (its Turkish list stops at Zipf 3.0), the highest of the word's common inflected forms; 0.0 when none is listed."""
    from wordfreq import zipf_frequency

    from cefrtune.levels import word_zipf

    return word_zipf(word, pos) or max((zipf_frequency(f, "tr") for f in _inflected_forms(word, pos)), default=0.0)


_FRONT, _VOWEL, _VOICELESS = set("eiöü"), set("aeıioöuü"), set("çfhkpsşt")
_HIGH = {"a": "ı", "ı": "ı", "o": "u", "u": "u", "e": "i", "i": "i", "ö": "ü", "ü": "ü"}
_SOFTEN = {"p": "b", "ç": "c", "t": "d", "k": "ğ"}


def _inflected_forms(word: str, pos: str) -> list[str]:
    """Common inflections by vowel harmony: a noun's accusative, dative, genitive, plural, locative, ablative,
    -lI and -lA forms (with the softened stem: kitabı); a verb's past, present, -mIş, participles and converbs."""
    word = fold(word)
    if " " in word:
        return []
    verb = pos == "verb" and word.endswith(("mak", "mek"))
    stem = word[:-3] if verb else word
    vowels = [c for c in stem if c in _VOWEL]
    if not vowels:
        return []
    a, i = ("e" if vowels[-1] in _FRONT else "a"), _HIGH[vowels[-1]]
    d = "t" if stem[-1] in _VOICELESS else "d"
    y = "y" if stem[-1] in _VOWEL else ""
    if verb:
        present = stem[:-1] + _HIGH[stem[-1]] + "yor" if y else stem + i + "yor"
        return [stem + d + i, stem + d + i + "l" + a + "r", present, stem + "m" + i + "ş", stem + y + a + "n",
                stem + y + a + "r" + a + "k", stem + y + i + "p", stem + "m" + a + "s" + _HIGH[a],
                stem + d + i + "ğ" + i]
    stems = [stem] + ([stem[:-1] + _SOFTEN[stem[-1]]] if stem[-1] in _SOFTEN else [])
    forms = [s + y + i for s in stems] + [s + y + a for s in stems] + [s + ("n" if y else "") + i + "n" for s in stems]
    return forms + [stem + "l" + a + "r", stem + "l" + a + "r" + i, stem + d + a, stem + d + a + "n", stem + "l" + i,
                    stem + y + "l" + a]


# ---- level ordering -----------------------------------------------------------------------

_VOWELS = set("aeıioöuüâîû")
# Morphemes that mark a bare form (no suffix on the surface).
_UNMARKED = {"Noun", "Verb", "Adj", "Adv", "Pron", "Num", "Det", "Postp", "Conj", "Ques", "Interj", "Punc",
             "A3sg", "Pnon", "Nom", "Zero", "Pres", "Prop"}


def sentence_measures(sentence: str, level: str | None = None) -> dict:
    """Words, morphemes per word, syllables per word and whether the sentence uses grammar of
    `level` itself - the measures the level-ordering table compares."""
    from cefrtune.levels import sentence_grammar

    grammar = sentence_grammar(sentence)
    tokens = grammar.tokens
    # Morphemes of the reading the grammar check settled on: the stem plus every suffix with a surface.
    morphemes = [1 + sum(m not in _UNMARKED for m in r.morphemes) if r else 1 for r in grammar.readings]
    syllables = sum(sum(ch in _VOWELS for ch in fold(t.text)) or 1 for t in tokens)
    return {
        "words": len(tokens),
        "morphemes_per_word": sum(morphemes) / max(len(tokens), 1),
        "syllables": syllables,
        "level_grammar": grammar.uses(level) if level else False,
        "grammar_level": LEVELS.index(grammar.level),
    }


def level_ordering(sets: dict[str, list[str]]) -> dict:
    """Per level: mean words per sentence, morphemes per word, Ateşman readability
    (198.825 - 40.175 x syllables/word - 2.610 x words/sentence) and the share of sentences using
    grammar of their own level; plus the Spearman correlation between level and each measure over
    all sentences (readability should fall as the level rises, so its correlation is reported
    negated: positive = ordered as expected; for grammar, each sentence's highest feature level)."""
    rows, per_sentence = {}, {"level": [], "words": [], "morphemes_per_word": [], "atesman": [], "grammar_level": []}
    for level in LEVELS:
        sentences = sets.get(level) or []
        if not sentences:
            continue
        measures = [sentence_measures(s, level) for s in sentences]
        words = sum(m["words"] for m in measures)
        syllables = sum(m["syllables"] for m in measures)
        rows[level] = {
            "sentences": len(sentences),
            "words_per_sentence": round(words / len(sentences), 2),
            "morphemes_per_word": round(statistics.fmean(m["morphemes_per_word"] for m in measures), 3),
            "atesman": round(198.825 - 40.175 * syllables / max(words, 1) - 2.610 * words / len(sentences), 1),
            "level_grammar_share": round(sum(m["level_grammar"] for m in measures) / len(sentences), 3),
        }
        for m in measures:
            per_sentence["level"].append(LEVELS.index(level))
            per_sentence["words"].append(m["words"])
            per_sentence["morphemes_per_word"].append(m["morphemes_per_word"])
            per_sentence["atesman"].append(
                -(198.825 - 40.175 * m["syllables"] / max(m["words"], 1) - 2.610 * m["words"])
            )
            per_sentence["grammar_level"].append(m["grammar_level"])
    spearman = {}
    if len(rows) > 1:
        for key, name in (("words", "words_per_sentence"), ("morphemes_per_word", "morphemes_per_word"),
                          ("atesman", "atesman_difficulty"), ("grammar_level", "grammar_level")):
            spearman[name] = round(spearman_correlation(per_sentence["level"], per_sentence[key]), 3)
    return {"levels": rows, "spearman": spearman}


def spearman_correlation(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks, tied values sharing their
    average rank (as scipy's `spearmanr` computes it). NaN when either side is constant."""
    if len(x) != len(y):
        raise ValueError(f"spearman_correlation needs two lists of the same length (got {len(x)} and {len(y)})")
    rx, ry = _average_ranks(x), _average_ranks(y)
    if len(set(rx)) < 2 or len(set(ry)) < 2:
        return math.nan
    return statistics.correlation(rx, ry)


def _average_ranks(values: list[float]) -> list[float]:
    """1-based ranks; a run of equal values gets the mean of the ranks it spans."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start:end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


# ---- stats --------------------------------------------------------------------------------


def stats(paths: list[str | Path], model: str = "gemma-3-270m") -> dict:
    """Examples, distinct words, sentence lengths and token lengths (prompt + answer under the
    model's tokenizer and prompt style), with a recommended max_seq_length and why."""
    from transformers import AutoTokenizer

    from cefrtune import models
    from cefrtune.features import encode
    from cefrtune.prompts import PromptStyle

    examples = [e for path in paths for e in load_examples(path)]
    tokenizer = AutoTokenizer.from_pretrained(models.resolve(model).path)
    style = PromptStyle.for_tokenizer(tokenizer)
    lengths, longest_id = [], None
    for example in examples:
        prompt, response = encode(example, tokenizer, style)
        lengths.append(len(prompt) + len(response))
        if len(prompt) + len(response) == max(lengths):
            longest_id = example.id or example.origin
    words = [len(tokenize(s)) for e in examples for s in e.sentences]
    longest = max(lengths)
    recommended = max(64, math.ceil(longest * 1.25 / 64) * 64)
    return {
        "examples": len(examples),
        "distinct_target_words": len({fold(w) for e in examples for w in e.words}),
        "sentence_words": _length_stats(words),
        "tokens": {**_length_stats(lengths), "longest_example": longest_id},
        "tokenizer": model,
        "recommended_max_seq_length": recommended,
        "reason": f"the longest example has {longest} tokens ({longest_id}); {recommended} leaves 25 % headroom, "
        "rounded to 64. "
        "Training refuses any example longer than max_seq_length (nothing is truncated).",
    }
