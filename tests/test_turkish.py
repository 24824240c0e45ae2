import pytest

from cefrtune.turkish import analyse_sentence, analyse_word, fold, lemmas, tokenize, uses_word


def test_fold_is_turkish():
    assert fold("İSTANBUL") == "istanbul"
    assert fold("ISPARTA") == "ısparta"
    assert fold("Işık") == "ışık"
    assert fold("rüzgâr") == "rüzgar"


def test_tokenize_keeps_apostrophe_suffixes():
    assert tokenize("Ayşe İstanbul'a gitti, 3 gün kaldı.") == ["Ayşe", "İstanbul'a", "gitti", "gün", "kaldı"]


@pytest.mark.parametrize(
    "form, lemma",
    [
        ("evde", "ev"), ("evim", "ev"), ("evler", "ev"),
        ("kitabı", "kitap"), ("ağacı", "ağaç"), ("çocuğun", "çocuk"), ("ağzım", "ağız"), ("suyu", "su"),
        ("gidiyorum", "gitmek"), ("gitti", "gitmek"), ("yiyorum", "yemek"), ("diyor", "demek"),
        ("okumalısın", "okumak"), ("rüzgâr", "rüzgar"),
    ],
)
def test_lemmas_of_inflected_forms(form, lemma):
    assert lemma in lemmas(form)


@pytest.mark.parametrize(
    "sentence, word, used",
    [
        ("Yarın okula gidiyorum.", "gitmek", True),
        ("Kitabı masada bıraktım.", "kitap", True),
        ("Bahçedeki ağacı kestiler.", "ağaç", True),
        ("Evde kimse yok.", "ev", True),
        ("Evde kimse yok.", "okul", False),
        ("Ayşe İstanbul'a gitti.", "İstanbul", True),
    ],
)
def test_uses_word(sentence, word, used):
    assert uses_word(sentence, word) is used


def test_zeyrek_state_bug_is_worked_around():
    # zeyrek 0.1.3 mutates shared sets: after `gelecek`, `geliyor` got no analysis.
    analyse_word.cache_clear()
    assert analyse_word("gelecek")
    assert analyse_word("geliyor")


def test_proper_nouns_apart_and_typos_unknown():
    tokens = analyse_sentence("Zeynep'in kedisi bahçde uyuyor.")
    assert tokens[0].proper
    assert not tokens[2].known and not tokens[2].proper
    assert not analyse_sentence("Kitabı okudum.")[0].proper
