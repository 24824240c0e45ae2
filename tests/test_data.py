"""The validator: one broken fixture per error kind, the message and the exit code."""

import json
import math

import pytest

from cefrtune.cli import main
from cefrtune.data import split_examples, validate
from cefrtune.examples import Example

GOOD = {
    "id": "t1",
    "level": "A1",
    "words": ["ev", "gitmek", "kitap", "su", "okul", "elma", "araba", "kedi", "anne", "güzel"],
    "sentences": [
        "Evde kimse yok.", "Yarın okula gidiyorum.", "Kitabı masada bıraktım.", "Bir bardak su içtim.",
        "Okul çok büyük.", "Elmayı sen mi yedin?", "Babamın arabası yeni.", "Kedi bahçede uyuyor.",
        "Annem mutfakta yemek yapıyor.", "Bu ev çok güzel.",
    ],
}


def write(tmp_path, *records, name="d.jsonl"):
    path = tmp_path / name
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records),
        encoding="utf-8",
    )
    return path


def kinds(path, **kw):
    return {(p.kind, p.severity) for p in validate([path], **kw).problems}


def variant(**changes):
    record = json.loads(json.dumps(GOOD))
    for key, value in changes.items():
        if value is None:
            record.pop(key)
        else:
            record[key] = value
    return record


def test_good_example_is_clean(tmp_path):
    report = validate([write(tmp_path, GOOD)])
    assert report.problems == []
    assert report.summary["examples"] == 1 and report.summary["distinct_target_words"] == 10


@pytest.mark.parametrize(
    "record, kind",
    [
        ("{not json", "malformed_json"),
        (variant(level=None), "missing_field"),
        (variant(extra="x"), "extra_field"),
        (variant(words="ev su"), "wrong_type"),
        (variant(level="D1"), "unknown_level"),
        (variant(sentences=GOOD["sentences"][:9]), "count_mismatch"),
        (variant(words=GOOD["words"][:9], sentences=GOOD["sentences"][:9]), "wrong_count"),
        (variant(sentences=GOOD["sentences"][:9] + ["   "]), "empty_string"),
        (variant(words=GOOD["words"][:9] + ["ev"]), "duplicate_word"),
        (variant(sentences=GOOD["sentences"][:9] + ["Evde kimse yok."]), "duplicate_sentence"),
        (variant(sentences=["Okulda kimse yok."] + GOOD["sentences"][1:]), "target_word_missing"),
        (variant(sentences=["Evde kimse yokk."] + GOOD["sentences"][1:]), "unknown_token"),
        (variant(sentences=["Ev."] + GOOD["sentences"][1:]), "sentence_length"),
    ],
)
def test_each_error_kind(tmp_path, record, kind, capsys):
    path = write(tmp_path, record)
    assert (kind, "error") in kinds(path)
    assert main(["data", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:1" in out and f"[{kind}]" in out


def test_grammar_above_level_is_a_warning(tmp_path):
    path = write(tmp_path, variant(sentences=["Ev satılıyor mu acaba?"] + GOOD["sentences"][1:]))
    found = validate([path]).problems
    assert [(p.kind, p.severity) for p in found] == [("grammar_above_level", "warning")]
    assert "passive" in found[0].message
    assert main(["data", "validate", str(path)]) == 0


def test_duplicate_across_files_names_the_first(tmp_path):
    a = write(tmp_path, GOOD, name="a.jsonl")
    b = write(tmp_path, variant(id="t2"), name="b.jsonl")
    dups = [p for p in validate([a, b]).problems if p.kind == "duplicate_sentence"]
    assert len(dups) == 10 and str(a) in dups[0].message


def test_filler_pattern(tmp_path):
    words = ["ev", "okul", "kitap", "su", "elma", "araba", "kedi", "anne", "masa", "kalem"]
    records = []
    for i in range(6):
        records.append(
            {
                "level": "A1",
                "words": words,
                "sentences": [f"Bu {w} {'çok' if i % 2 else 'biraz'} güzel{'dir' * 0}." for w in words],
            }
        )
    path = write(tmp_path, *records)
    assert ("filler_pattern", "error") in kinds(path)


def test_json_list_and_summary(tmp_path, capsys):
    path = tmp_path / "seed.json"
    path.write_text(
        json.dumps(
            [GOOD, variant(id="t2", sentences=[s.replace(".", "!") for s in GOOD["sentences"]])],
            ensure_ascii=False,
            indent=2,
        )
    )
    assert main(["data", "validate", str(path), "--json"]) == 1  # the second repeats the first's sentences
    summary = json.loads(capsys.readouterr().out)
    assert summary["examples"] == 2 and summary["errors_by_kind"] == {"duplicate_sentence": 10}


def test_split_is_deterministic_and_disjoint():
    examples = [
        Example("A1", [f"w{i}"], [f"Cümle {i}.", "Ortak cümle." if i in (3, 4) else f"Başka {i}."], id=str(i))
        for i in range(40)
    ]
    train1, eval1 = split_examples(examples, 0.1, seed=7)
    train2, eval2 = split_examples(examples, 0.1, seed=7)
    assert [e.id for e in eval1] == [e.id for e in eval2] and [e.id for e in train1] == [e.id for e in train2]
    assert len(eval1) == 4
    eval_sentences = {s for e in eval1 for s in e.sentences}
    assert not eval_sentences & {s for e in train1 for s in e.sentences}
    assert [e.id for e in split_examples(examples, 0.1, seed=8)[1]] != [e.id for e in eval1]


def test_split_command_writes_seed_style_files(tmp_path):
    second = variant(id="t2", sentences=[s.replace(".", "!") for s in GOOD["sentences"]])
    path = write(tmp_path, GOOD, second)
    assert main(["data", "split", str(path), "--out", str(tmp_path / "split")]) == 0
    train = json.loads((tmp_path / "split" / "training_data_a1_list_format_train.json").read_text())
    evaluation = json.loads((tmp_path / "split" / "training_data_a1_list_format_eval.json").read_text())
    assert len(evaluation) == 1 and len(train) == 0  # the train example shares its sentences: dropped


# ---- near-duplicates, circumflex spellings, grammar-feature shares --------------------------------


def test_near_duplicate_pairs_by_shared_words():
    from cefrtune.data import near_duplicate_pairs

    sentences = [
        "Türkçe biraz zor ama çok güzel bir dil.",
        "Türkçe zor ama çok güzel bir dil.",
        "Kardeşim her sabah okula otobüsle gidiyor.",
        "Bu akşam annemle birlikte sinemaya gideceğiz.",
    ]
    pairs = near_duplicate_pairs(sentences, overlap=0.6)
    assert [(a, b) for a, b, _ in pairs] == [(0, 1)] and pairs[0][2] == pytest.approx(7 / 8)
    assert near_duplicate_pairs(sentences, overlap=0.9) == []  # configurable


def test_near_duplicate_is_a_warning_per_level(tmp_path):
    a2 = variant(level="A2", sentences=["Bu evde artık kimse yaşamıyor galiba."] + GOOD["sentences"][1:9]
                 + ["Bu güzel evde artık kimse yaşamıyor galiba."])
    path = write(tmp_path, a2)
    report = validate([path])
    near = [p for p in report.problems if p.kind == "near_duplicate"]
    assert len(near) == 1 and near[0].severity == "warning" and "sentences[0]" in near[0].message
    assert report.summary["near_duplicate_pairs"] == {"A2": 1}
    assert not [p for p in validate([path], near_duplicate_overlap=0.95).problems if p.kind == "near_duplicate"]
    a1 = write(tmp_path, variant(sentences=a2["sentences"]), name="a1.jsonl")  # every level is compared by default
    assert [p for p in validate([a1]).problems if p.kind == "near_duplicate"]
    assert not [p for p in validate([a1], near_duplicate_levels=("A2",)).problems if p.kind == "near_duplicate"]


@pytest.mark.parametrize(
    "sentence, flagged",
    [
        ("Evde hala kimse yok.", True),
        ("Ayşe hala bize geldi, ev çok güzel.", False),  # the aunt, after a name
        ("Evde hala kızım uyuyor.", False),
        ("Evde hâlâ kimse yok.", False),
        ("Ev sahibi hakim oldu.", True),
    ],
)
def test_circumflex_spelling(tmp_path, sentence, flagged):
    sentences = [sentence] + GOOD["sentences"][1:]
    problems = validate([write(tmp_path, variant(sentences=sentences))]).problems
    found = [p for p in problems if p.kind == "circumflex_spelling"]
    assert bool(found) == flagged
    assert all(p.severity == "warning" and "hâ" in p.message for p in found)


def test_grammar_feature_cap(tmp_path):
    words = ["ev", "gitmek", "kitap", "su", "okul", "elma", "araba", "kedi", "anne", "güzel"]
    sentences = [
        "Bu evde her gün kimse olmamalı.", "Yarın okula gitmeliyim.", "Kitabı masada bırakmalısın.",
        "Bir bardak su içmeliyiz.", "Okul çok büyük.", "Elmayı sen mi yedin?", "Babamın arabası yeni.",
        "Kedi bahçede uyuyor.", "Annem mutfakta yemek yapıyor.", "Bu ev çok güzel.",
    ]
    path = write(tmp_path, {"level": "A2", "words": words, "sentences": sentences})
    report = validate([path])
    capped = [p for p in report.problems if p.kind == "grammar_feature_share"]
    assert len(capped) == 1 and "-mAlI" in capped[0].message and "4 of 10" in capped[0].message
    assert report.summary["top_grammar_feature_share"]["A2"] == {"feature": "necessity -mAlI", "share": 0.4}
    assert not [p for p in validate([path], grammar_feature_cap=0.5).problems if p.kind == "grammar_feature_share"]


def test_wordlist_zipf_falls_back_to_inflected_forms():
    from cefrtune.data import _inflected_forms, wordlist_zipf

    assert {"kitabı", "kitaba", "kitaplar", "kitapta"} <= set(_inflected_forms("kitap", "noun"))
    assert {"arabayı", "arabanın", "arabada"} <= set(_inflected_forms("araba", "noun"))
    assert {"okudu", "okuyor", "okuyan", "okuyup"} <= set(_inflected_forms("okumak", "verb"))
    assert wordlist_zipf("ev", "noun") > 5
    assert wordlist_zipf("binaenaleyh", "adv") == 0.0  # below wordfreq's Turkish list: left blank in the TSV


def test_spearman_correlation_with_ties_matches_hand_computed_values():
    from cefrtune.data import _average_ranks, spearman_correlation

    assert _average_ranks([5, 6, 7, 8, 7]) == [1, 2, 3.5, 5, 3.5]
    # ranks x 1..5, y 1, 2, 3.5, 5, 3.5: sum dx*dy = 8, sum dx^2 = 10, sum dy^2 = 9.5 -> 8 / sqrt(95)
    assert spearman_correlation([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))
    # levels with ties on both sides (as level_ordering has): ranks 2,2,2,5,5,5 against 1,3,2,4,6,5
    assert spearman_correlation([0, 0, 0, 1, 1, 1], [3, 5, 4, 6, 8, 7]) == pytest.approx(math.sqrt(13.5 / 17.5))
    assert spearman_correlation([1, 1, 2, 2], [1, 2, 1, 2]) == pytest.approx(0.0)
    assert spearman_correlation([1, 2, 3], [1, 4, 9]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman_correlation([1, 2, 3], [9, 4, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman_correlation([1, 2, 3], [4, 4, 4]))
