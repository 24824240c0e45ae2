"""Checked generation driven by a scripted generator: regenerates only failing sentences,
respects the budget, flags what still fails."""

import pytest

import tiny
from cefrtune.generate import read_requests
from cefrtune.generation import Request, RequestError, check_request, generate_checked
from cefrtune.prompts import PromptStyle

WORDS = ["ev", "su", "okul", "kitap", "elma"]
# The scripted model's first answer: sentence 2 does not use its word (su), the others pass.
FIRST = ("1. Evde kimse yok.\n2. Kedi uyuyor.\n3. Yarın okula gidiyorum.\n4. Bu kitabı okudum."
         "\n5. Elmayı yedin mi?")


class Scripted:
    """A `complete` function: the first call answers whole lists, later calls one line each."""

    def __init__(self, first: str, lines: list[str], fluency: list[float] | None = None):
        self.first, self.lines, self.calls = first, list(lines), []
        self.fluency = list(fluency) if fluency is not None else None

    def __call__(self, prompts, max_new_tokens, sample, seed, lines, scores=None):
        stop_at_newline = lines == [1] * len(prompts)
        self.calls.append((len(prompts), stop_at_newline, sample))
        if not stop_at_newline:
            return [self.first] * len(prompts)
        if scores is not None and self.fluency is not None:
            scores[:] = [self.fluency.pop(0) for _ in prompts]
        return [self.lines.pop(0) if self.lines else "Geçersiz." for _ in prompts]


@pytest.fixture
def style_tok():
    tok = tiny.tokenizer()
    return PromptStyle.for_tokenizer(tok), tok


def test_only_failing_sentences_are_regenerated(style_tok):
    style, tok = style_tok
    first = FIRST
    script = Scripted(first, ["Bir bardak su içtim."])
    results, summary = generate_checked(
        None, tok, style, [Request("A1", WORDS)], attempts=3, complete=script, candidates=1
    )
    assert results[0]["sentences"][1] == "Bir bardak su içtim."
    assert script.calls == [(1, False, False), (1, True, True)]  # one list, then one sentence
    assert summary["pass_rate_before"] == pytest.approx(0.8) and summary["pass_rate"] == 1.0
    assert summary["mean_attempts"] == pytest.approx(6 / 5)
    assert results[0]["flagged"] == []


def test_budget_is_respected_and_failures_flagged(style_tok):
    style, tok = style_tok
    first = "1. Evde kimse yok.\n2. Kedi uyuyor.\n3. Yarın okula gidiyorum.\n4. Kitap okunuyor.\n5. Elmayı yedin mi?"
    script = Scripted(first, [])
    results, summary = generate_checked(
        None, tok, style, [Request("A1", WORDS)], attempts=2, complete=script, candidates=1
    )
    assert len(script.calls) == 3  # the list, then two rounds
    assert script.calls[1][0] == 2  # both failing sentences, batched
    assert summary["flagged"] == 2 and summary["pass_rate"] == pytest.approx(0.6)
    reasons = {f["index"]: f["reasons"] for f in results[0]["flagged"]}
    assert "does not use 'su'" in reasons[2][0] and "passive" in " ".join(reasons[4])
    assert [c["attempts"] for c in results[0]["checks"]] == [1, 3, 1, 3, 1]


def test_candidates_first_passing_one_is_kept_all_are_counted(style_tok):
    style, tok = style_tok
    first = FIRST
    script = Scripted(first, ["Kedi uyuyor.", "Bir bardak su içtim.", "Su soğuk."])
    results, summary = generate_checked(None, tok, style, [Request("A1", WORDS)], attempts=3, complete=script,
                                        candidates=2, free_candidates=3, free_attempts=None)
    assert script.calls == [(1, False, False), (3, True, True)]  # three samples of sentence 2 in one batch
    assert results[0]["sentences"][1] == "Bir bardak su içtim."  # the first that passes, not a later one
    assert results[0]["checks"][1]["attempts"] == 2 and results[0]["checks"][1]["samples"] == 4
    assert summary["mean_attempts"] == pytest.approx(6 / 5) and summary["mean_samples"] == pytest.approx(8 / 5)
    assert summary["free_candidates"] == 3 and summary["pass_rate"] == 1.0
    with pytest.raises(ValueError, match="candidates"):
        generate_checked(None, tok, style, [Request("A1", WORDS)], attempts=1, complete=script, candidates=0)


def test_the_most_fluent_passing_candidate_is_kept(style_tok):
    style, tok = style_tok
    first = FIRST
    lines = ["Bir bardak su içtim.", "Su, su, su.", "Deniz suyu çok soğuk."]
    script = Scripted(first, lines, fluency=[-2.5, -0.1, -1.2])  # the list of words scores best but fails its checks
    results, _ = generate_checked(None, tok, style, [Request("A1", WORDS)], attempts=1, complete=script,
                                  free_candidates=3, free_attempts=None)
    assert results[0]["sentences"][1] == "Deniz suyu çok soğuk."


def test_candidates_are_ranked_by_rank_when_given(style_tok):
    style, tok = style_tok
    first = FIRST
    lines = ["Bir bardak su içtim.", "Su, su, su.", "Deniz suyu çok soğuk ve tuzlu."]
    script = Scripted(first, lines, fluency=[-0.1, -0.2, -3.0])
    ranked = []

    def shortest(sentences):
        ranked.append(list(sentences))
        return [-len(s) for s in sentences]

    results, _ = generate_checked(None, tok, style, [Request("A1", WORDS)], attempts=1, complete=script,
                                  free_candidates=3, free_attempts=None, rank=shortest)
    assert ranked == [["Bir bardak su içtim.", "Deniz suyu çok soğuk ve tuzlu."]]  # only passing ones are ranked
    assert results[0]["sentences"][1] == "Bir bardak su içtim."


def test_polish_replaces_a_passing_sentence_only_by_a_better_ranked_passing_one(style_tok):
    style, tok = style_tok
    first = ("1. Evde kimse yok ve hava çok soğuk.\n2. Evde su var.\n3. Yarın okula gidiyorum."
             "\n4. Bu kitabı okudum.\n5. Elmayı yedin mi?")
    # two samples per sentence, ranked shortest first: sentence 1's best is sentence 2 again (sentence 2
    # would then fail as a duplicate), sentence 3's ranks below the sentence itself, "Su." and the like fail
    lines = ["Evde su var.", "Ev çok temiz.", "Su.", "Su soğuk.", "Okula gidiyorum ve sonra eve dönüyorum.",
             "Ev.", "Kitap.", "Kitap güzel.", "Kedi.", "Elma tatlı."]
    script = Scripted(first, lines)
    results, summary = generate_checked(None, tok, style, [Request("A1", WORDS)], attempts=2, complete=script,
                                        polish=2, rank=lambda sentences: [-len(s) for s in sentences])
    assert script.calls == [(1, False, False), (10, True, True)]  # all passed: no repair round, one polish round
    assert results[0]["sentences"] == ["Ev çok temiz.", "Su soğuk.", "Yarın okula gidiyorum.", "Kitap güzel.",
                                       "Elma tatlı."]
    assert summary["polished"] == 4 and summary["pass_rate"] == 1.0
    assert [c["samples"] for c in results[0]["checks"]] == [3] * 5
    _, summary = generate_checked(None, tok, style, [Request("A1", WORDS)], attempts=2,
                                  complete=Scripted(first, []), polish=2)
    assert summary["polish"] == 0 and summary["polished"] == 0  # nothing ranks without a model or rank


def test_default_schedule_one_free_sample_then_steered_candidates(style_tok):
    style, tok = style_tok
    first = FIRST
    script = Scripted(first, [])  # every regenerated line fails
    _, summary = generate_checked(None, tok, style, [Request("A1", WORDS)], attempts=3, complete=script)
    assert [c[0] for c in script.calls] == [1, 1, 4, 4]  # the list, one free sample, then 4 steered a round
    assert summary["flagged"] == 1 and summary["mean_samples"] == pytest.approx((4 + 1 + 1 + 4 + 4) / 5)


def test_steering_writes_the_stem(style_tok):
    style, tok = style_tok
    first = FIRST
    script = Scripted(first, [" çok soğuk."])  # a steered attempt: the line starts with 'Su'
    results, _ = generate_checked(
        None, tok, style, [Request("A1", WORDS)], attempts=1, complete=script, free_attempts=0, candidates=1
    )
    assert results[0]["sentences"][1] == "Su çok soğuk."


def test_bad_requests_are_named():
    with pytest.raises(RequestError, match="unknown level 'D1'"):
        check_request("D1", WORDS, 5)
    with pytest.raises(RequestError, match="4 words, expected 5"):
        check_request("A1", WORDS[:4], 5)
    with pytest.raises(RequestError, match="word 2 is empty"):
        check_request("A1", ["ev", " ", "a", "b", "c"], 5)
    with pytest.raises(RequestError, match="not a Turkish word"):
        check_request("A1", ["ev", "su2", "a", "b", "c"], 5)


def test_read_requests_forms(tmp_path):
    lists = tmp_path / "lists.json"
    lists.write_text('[["ev","su","okul","kitap","elma"]]')
    with pytest.raises(RequestError, match="needs --level"):
        read_requests(lists, n=5)
    assert read_requests(lists, n=5, level="A1")[0].words == WORDS


def test_the_steered_stem_gets_its_turkish_capital():
    from cefrtune.generation import _steer_head

    assert (_steer_head("ılık"), _steer_head("iğne"), _steer_head("elma")) == ("Ilık", "İğne", "Elma")


def test_the_steered_stem_of_a_verb_drops_its_infinitive_ending_and_a_noun_keeps_it():
    from cefrtune.generation import _steer_head

    # gitmek: a verb in the word lists; ekmek (bread): a noun there, though the analyser also reads ek-mek (to
    # sow); sızlanmak: in no list, the analyser reads it as a verb
    heads = [_steer_head(w) for w in ("gitmek", "ekmek", "sızlanmak")]
    assert heads == ["Git", "Ekmek", "Sızlan"]
