"""The checks beyond morphology: each catches its kind of unusable sentence and leaves good
Turkish alone (the sentences below are the kinds a blind rater marked unusable, and natural
A1 sentences the old checks flagged)."""

import pytest

from cefrtune.metrics import check_sentence
from cefrtune.sentence_checks import sentence_findings
from cefrtune.turkish import analyse_sentence, find_word


@pytest.mark.parametrize(
    "sentence, kind",
    [
        ("Parkta çok güzel bir park var.", "tautology"),
        ("Öğretmen bize yeni bir öğretmen yaptı.", "tautology"),
        ("Su, su, su.", "no_predicate"),
        ("Su su su.", "tautology"),
        ("Elma, armut ve muz.", "no_predicate"),
        ("Inek bana biber yaptı.", "spelling"),
        ("ılık su sabunla yıkadık.", "spelling"),
        ("güneş gözlüğü kullanıyorum.", "spelling"),
        ("Reçeldeki bal bugün çok tuzlu.FlashValue", "foreign_fragment"),
        ("Hava soğuk.bindingFields", "foreign_fragment"),
        ("2. Sözlükten bir sözüm kaldı.", "list_number"),
        ('Bu cümle şu: "Evde kimse yok."', "meta_text"),
    ],
)
def test_each_kind_is_found(sentence, kind):
    assert kind in [f.kind for f in sentence_findings(sentence)]


@pytest.mark.parametrize(
    "sentence",
    [
        "Kalemim mavi.", "Saat kaç?", "Başım ağrıyor.", "Otobüse biniyorum.", "Bu bir kitap.",
        "Hava güzel, deniz mavi.", "Yavaş yavaş yürüyor.", "Akşam yemek yedik.",
        "Çok yorgunum ama çok mutluyum.", "Her gün okula gidiyorum, her gün çalışıyorum.",
        "Saat 7'de kalktım.", "İstanbul çok büyük.", "Ilık su içtim.",
        "İki kedi var.", '"Merhaba!" dedi.', "3 elma aldım.",
        "Çorbayı kaşıkla içiyorum.", "Ali, Ayşe'ye bir kitap verdi.",
    ],
)
def test_good_turkish_has_no_finding(sentence):
    assert sentence_findings(sentence) == []


@pytest.mark.parametrize(
    "sentence, word, used",
    [
        ("Yağmur yağdı, yağmur çıktı.", "yağ", False),  # yağmak "to rain", not yağ "oil"
        ("Yağ çok pahalı.", "yağ", True),
        ("Öğretmen bize bir şarkı söyledi.", "öğretmek", False),  # the noun öğretmen, not öğretmek
        ("Dağcılık çok zor.", "dağ", False),  # a derivation is another word
        ("Madenciler yerin altında çalışıyor.", "maden", False),
        ("Şekerli çay içtim.", "şeker", True),  # -lI keeps the noun's meaning
        ("Bu çay şekerli.", "şekerli", True),
        ("Balkondan sarkan çiçekler çok güzel.", "sarkmak", True),  # a participle is the verb
        ("Kedi dışarı çıktı.", "çıkmak", True),  # a finite verb beats the noun çıktı
        ("Akşam yemek yedik.", "yemek", True),
        ("Okumayı seviyorum.", "okumak", True),
        ("Babam çorbayı yavaş yavaş karıştırıyor.", "karıştırmak", True),  # a causative verb of its own
        ("Dedem merdivenlerde yoruldu.", "yorulmak", True),
        ("Babam iyileşti, bugün işe gitti.", "iyileşmek", True),
        ("Reçeldeki bal çok tatlı.", "reçel", True),
    ],
)
def test_target_word_in_its_own_sense(sentence, word, used):
    assert (find_word(analyse_sentence(sentence), word) is not None) is used


def test_checked_mode_fails_a_tautology_with_its_reason():
    check = check_sentence("Parkta çok güzel bir park var.", "park", "A1")
    assert not check.passed
    assert any("tautology" in reason for reason in check.reasons)
    assert check_sentence("Parkta çocuklar oynuyor.", "park", "A1").passed


def test_a_small_first_letter_is_named_with_its_turkish_capital():
    assert [f.message for f in sentence_findings("iki kedi uyuyor.")] == [
        "starts with a small letter: write 'İki', not 'iki'"
    ]
