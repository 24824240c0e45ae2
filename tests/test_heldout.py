"""The held-out word lists that teacher-usable is measured on stay out of the training data:
no list, no reference sentence and none of the lists' new words appear in any dataset."""

import json

from cefrtune.examples import load_examples
from cefrtune.resources import data_dir
from cefrtune.turkish import LEVELS, analyse_sentence, fold

HELDOUT = data_dir() / "heldout"


def _lists() -> list[dict]:
    return [json.loads(line) for line in (HELDOUT / "a1-lists.jsonl").read_text(encoding="utf-8").splitlines() if line]


def _new_words() -> set[str]:
    """The lists' words that no training example may use (datasets/heldout/a1-new-words.txt)."""
    text = (HELDOUT / "a1-new-words.txt").read_text(encoding="utf-8")
    return {fold(line.strip()) for line in text.splitlines() if line.strip()}


def _training() -> list:
    return [e for level in LEVELS for e in load_examples(data_dir() / f"{level.lower()}.jsonl")]


def test_heldout_set_is_large_enough_and_mostly_new():
    lists = _lists()
    assert len(lists) >= 30 and all(len(set(item["words"])) == 10 and item["level"] == "A1" for item in lists)
    new = _new_words()
    slots = [fold(w) for item in lists for w in item["words"]]
    assert sum(w in new for w in slots) >= len(slots) / 2
    references = load_examples(HELDOUT / "a1-references.jsonl")
    assert len(references) >= 10
    by_id = {item["id"]: item["words"] for item in lists}
    assert all(by_id[r.id] == r.words for r in references)


def test_no_heldout_list_or_sentence_is_trained_on():
    training = _training()
    heldout_lists = {tuple(fold(w) for w in item["words"]) for item in _lists()}
    assert not heldout_lists & {tuple(fold(w) for w in e.words) for e in training}
    references = {fold(s) for r in load_examples(HELDOUT / "a1-references.jsonl") for s in r.sentences}
    assert not references & {fold(s) for e in training for s in e.sentences}


def test_new_words_are_never_trained_on():
    """Neither a target of an A1 example nor a lemma of any A1 sentence: the A1 model never saw them.
    (Other levels' datasets may use them; an A1 adapter is not trained on those.)"""
    a1 = load_examples(data_dir() / "a1.jsonl")
    new = _new_words()
    assert not new & {fold(w) for e in a1 for w in e.words}
    a1_lemmas = {lemma for e in a1 for s in e.sentences for token in analyse_sentence(s) if not token.proper
                 for lemma in token.lemmas}  # names aside: the analyser reads `Kanada'da` as kanat
    assert sorted(new & a1_lemmas) == []
