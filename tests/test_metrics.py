"""Quality metrics on hand-written outputs whose values are known."""

import pytest

from cefrtune.metrics import score
from cefrtune.prompts import PromptStyle, parse_numbered

WORDS = ["ev", "su", "okul", "kitap", "elma"]
GOOD = ["Evde kimse yok.", "Bir bardak su içtim.", "Yarın okula gidiyorum.", "Bu kitabı okudum.", "Elmayı yedin mi?"]


def item(sentences, format_valid=True, words=WORDS, level="A1"):
    return {"level": level, "words": words, "sentences": sentences, "format_valid": format_valid, "issues": []}


def test_perfect_output():
    m = score([item(GOOD)])
    assert m["format_valid"] == 1.0 and m["target_word_used"] == 1.0 and m["pass_rate"] == 1.0
    assert m["unknown_token_rate"] == 0.0 and m["above_level_grammar_rate"] == 0.0 and m["misplaced_words"] == 0


def test_missing_number():
    parsed = parse_numbered("1. Evde kimse yok.\n2. Bir bardak su içtim.\n4. Bu kitabı okudum.\n5. Elmayı yedin mi?", 5)
    assert parsed.sentences[2] is None and not parsed.format_valid
    assert any("missing sentence(s) 3" in issue for issue in parsed.issues)
    m = score([item(parsed.sentences, parsed.format_valid)])
    assert m["format_valid"] == 0.0 and m["target_word_used"] == pytest.approx(0.8)
    assert m["per_item"][0]["sentences"][2]["reasons"] == ["missing"]


def test_misplaced_word():
    sentences = [
        "Okulda kimse yok.",
        "Bir bardak su içtim.",
        "Yarın eve gidiyorum.",
        "Bu kitabı okudum.",
        "Elmayı yedin mi?",
    ]
    m = score([item(sentences)])
    assert m["target_word_used"] == pytest.approx(0.6)
    assert m["misplaced_words"] == 2
    found = {(x["word"], tuple(x["found_in"])) for x in m["per_item"][0]["misplaced_words"]}
    assert found == {("ev", (3,)), ("okul", (1,))}


def test_invented_word():
    sentences = GOOD[:4] + ["Elmayı gürbeledin mi?"]
    m = score([item(sentences)])
    assert m["unknown_token_rate"] == pytest.approx(1 / 16)
    assert "unknown word(s): gürbeledin" in m["per_item"][0]["sentences"][4]["reasons"]


def test_passive_verb_in_an_a1_sentence():
    sentences = GOOD[:3] + ["Kitap okunuyor.", GOOD[4]]
    m = score([item(sentences)])
    assert m["above_level_grammar_rate"] == pytest.approx(0.2)
    assert "passive" in m["per_item"][0]["sentences"][3]["reasons"][0]
    assert score([item(sentences, level="B1")])["above_level_grammar_rate"] == 0.0


def test_duplicated_sentence_and_copy_from_train():
    a = item(GOOD)
    b = item(["Evde kimse yok."] + ["Su soğuk.", "Okul büyük.", "Kitap güzel.", "Elma tatlı."])
    m = score([a, b], train_sentences=["Su soğuk."])
    assert m["repeated_sentence_rate"] == pytest.approx(2 / 10)
    assert m["copied_from_train_rate"] == pytest.approx(1 / 10)
    assert "repeats another sentence" in m["per_item"][1]["sentences"][0]["reasons"]


def test_distinct_2():
    repeated = item(
        [
            "Bu çok güzel bir ev.",
            "Bu çok güzel bir su.",
            "Bu çok güzel bir okul.",
            "Bu çok güzel bir kitap.",
            "Bu çok güzel bir elma.",
        ]
    )
    assert score([repeated])["distinct_2"] < score([item(GOOD)])["distinct_2"]


def test_parser_reports_extra_text_and_merged_lines():
    text = ("İşte cümleler:\n1. Evde kimse yok. 2. Bir bardak su içtim.\n3. Yarın okula gidiyorum.\n"
            "4. Bu kitabı okudum.\n5. Elmayı yedin mi?\n6. Fazla.")
    parsed = parse_numbered(text, 5)
    assert not parsed.format_valid
    joined = " | ".join(parsed.issues)
    assert (
        "text outside the numbered list" in joined
        and "more than one numbered sentence" in joined
        and "outside 1-5" in joined
    )
    assert parsed.sentences[2] == "Yarın okula gidiyorum."


def test_word_named_first_format_is_stripped():
    style = PromptStyle("plain", name_words=True)
    body = style.response_body(GOOD, WORDS)
    assert body.splitlines()[0] == "1. ev — Evde kimse yok."
    assert parse_numbered(body, 5, style, WORDS).sentences == GOOD


def test_reference_sentences_score_near_perfect():
    from cefrtune.examples import load_examples
    from cefrtune.resources import data_dir

    examples = load_examples(data_dir() / "a1.jsonl")[:30]
    m = score([{"level": e.level, "words": e.words, "sentences": e.sentences} for e in examples])
    assert m["format_valid"] == 1.0 and m["target_word_used"] >= 0.98 and m["unknown_token_rate"] < 0.01
