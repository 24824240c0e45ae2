"""Blind rating (cefrtune.rate): the sheet hides the source, `score` recovers it and computes exact figures."""

import csv
import json
import math
from pathlib import Path

import pytest

from cefrtune.cli import main
from cefrtune.rate import RUBRIC, RUBRIC_TR, RatingError, cohen_kappa, make_sheet, score, wilson_interval

Z = 1.959963984540054  # the 97.5 % point of the standard normal

HUMAN = [
    {"id": "h-1", "level": "A1", "words": ["ev", "su", "kedi"], "source": "cefrtune",
     "sentences": ["Evimiz okulun yanında.", "Bir bardak su içtim.", "Kedi bahçede uyuyor."]},
    {"id": "h-2", "level": "A1", "words": ["elma", "okul", "anne"],
     "sentences": ["Elma kırmızı ve tatlı.", "Okul saat sekizde başlıyor.", "Annem bize çay yaptı."]},
]
# `cefrtune generate --checked` results: (passed, sentence) per slot; the third of the first list is missing.
TUNED = [
    (["kitap", "araba", "güzel"], [(True, "Kitap masada duruyor."), (False, "Araba araba arabadır."), (False, None)]),
    (["deniz", "ekmek", "sabah"], [(False, "Deniz mavi bir ekmek yedi."), (True, "Ekmek sıcak."),
                                   (True, "Sabah erken kalktım.")]),
]


def write_sources(tmp_path: Path) -> dict:
    human = tmp_path / "human.json"
    human.write_text(json.dumps(HUMAN, ensure_ascii=False, indent=2), encoding="utf-8")
    tuned = tmp_path / "tuned.jsonl"
    lines = []
    for words, slots in TUNED:
        sentences = [s for _, s in slots]
        checks = [{"index": i + 1, "word": w, "sentence": s, "passed": p, "reasons": [] if p else ["word not used"]}
                  for i, (w, (p, s)) in enumerate(zip(words, slots))]
        lines.append(json.dumps({"level": "A1", "words": words, "text": "...", "sentences": sentences,
                                 "format_valid": True, "issues": [], "checks": checks, "flagged": []},
                                ensure_ascii=False))
    tuned.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"human": human, "tuned": tuned}


def read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[dict], columns=None) -> Path:
    columns = columns or list(rows[0])
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


# Tuned sentences in (line, index) order, whatever the shuffle: what each rater gives them.
AYSE_TUNED = [(1, 2, 1, 1), (0, 0, 1, 1), (1, 1, 1, 0), (1, 2, 0, 1), (1, 0, 1, 1)]
MEHMET_TUNED = [(1, 2, 1, 1), (0, 0, 1, 1), (1, 2, 1, 1), (1, 2, 0, 1), (1, 0, 1, 1)]


def fill(sheet_dir: Path, tuned_ratings, name: str) -> Path:
    """A rater's copy of sheet.csv: human sentences all usable, tuned ones as given."""
    key = {row["id"]: row for row in read_csv(sheet_dir / "key.csv")}
    tuned_ids = sorted((i for i, r in key.items() if r["source"] == "tuned" and r["missing"] == "0"),
                       key=lambda i: (int(key[i]["line"]), int(key[i]["index"])))
    given = dict(zip(tuned_ids, tuned_ratings))
    rows = read_csv(sheet_dir / "sheet.csv")
    for row in rows:
        values = given.get(row["id"], (1, 2, 1, 1))
        row.update(zip(("grammatical", "meaning", "level_fit", "word_ok"), map(str, values)))
    return write_csv(sheet_dir / f"{name}.csv", rows)


@pytest.fixture
def sheet(tmp_path):
    sources = write_sources(tmp_path)
    result = make_sheet(sources, tmp_path / "rating", seed=0)
    return tmp_path / "rating", result, sources


def test_sheet_hides_the_source_and_mixes_sources(sheet):
    folder, result, sources = sheet
    assert result["rows"] == 11 and result["missing"] == 1
    assert result["sources"] == {"human": {"rows": 6, "missing": 0}, "tuned": {"rows": 5, "missing": 1}}
    rows = read_csv(folder / "sheet.csv")
    assert list(rows[0]) == ["id", "level", "word", "sentence", "grammatical", "meaning", "level_fit", "word_ok",
                             "comment"]
    assert [r["id"] for r in rows] == [f"s{i:03d}" for i in range(1, 12)]
    assert all(r[c] == "" for r in rows for c in ("grammatical", "meaning", "level_fit", "word_ok", "comment"))
    for name in ("sheet.csv", "sheet.html", "README.txt"):
        text = (folder / name).read_text(encoding="utf-8")
        for secret in ("human", "tuned", str(sources["tuned"]), "h-1", "word not used", "passed", "cefrtune\""):
            assert secret not in text, (name, secret)
    key = {r["id"]: r for r in read_csv(folder / "key.csv")}
    order = [key[r["id"]]["source"] for r in rows]
    assert sum(a != b for a, b in zip(order, order[1:])) >= 3  # interleaved, not two blocks
    assert sorted(r["sentence"] for r in rows) == sorted(
        [s for e in HUMAN for s in e["sentences"]] + [s for _, slots in TUNED for _, s in slots if s])
    missing = [r for r in key.values() if r["missing"] == "1"]
    assert len(missing) == 1 and missing[0]["id"] == "m001" and missing[0]["word"] == "güzel"
    assert missing[0]["checks_passed"] == "0" and missing[0]["index"] == "3" and missing[0]["line"] == "1"
    first_human = next(r for r in key.values() if r["item"] == "h-2" and r["index"] == "1")
    assert first_human["sentence"] == "Elma kırmızı ve tatlı."
    assert first_human["line"] == "17"  # where the object starts in the JSON list
    assert first_human["checks_passed"] == ""
    assert "grammatical 0/1" in (folder / "README.txt").read_text(encoding="utf-8")


def test_same_seed_same_sheet_other_seed_other_order(tmp_path, sheet):
    folder, _, sources = sheet
    again = make_sheet(sources, tmp_path / "again", seed=0)
    assert Path(again["sheet"]).read_text(encoding="utf-8") == (folder / "sheet.csv").read_text(encoding="utf-8")
    other = make_sheet(sources, tmp_path / "other", seed=1)
    assert Path(other["sheet"]).read_text(encoding="utf-8") != (folder / "sheet.csv").read_text(encoding="utf-8")


def test_score_two_raters_exact_figures(sheet, tmp_path):
    folder, _, sources = sheet
    ayse, mehmet = fill(folder, AYSE_TUNED, "ayse"), fill(folder, MEHMET_TUNED, "mehmet")
    summary = score([ayse, mehmet], folder / "key.csv", out=tmp_path / "ratings.jsonl")
    assert summary["raters"] == ["ayse", "mehmet"]
    assert set(summary["sources"]) == {"human", "tuned"}
    assert summary["sources"]["tuned"]["file"] == str(sources["tuned"])
    tuned = summary["sources"]["tuned"]
    one = tuned["raters"]["ayse"]  # 5 rated + the missing sentence counted as 0
    assert one["n"] == 6 and one["missing"] == 1
    assert [(one[m]["k"], one[m]["n"]) for m in ("grammatical", "natural", "nonsense", "level_fit", "word_ok",
                                                 "teacher_usable")] == [(4, 6), (2, 6), (3, 6), (4, 6), (4, 6), (1, 6)]
    both = tuned["all"]  # every rater's rating counts: 2 x (5 + 1 missing)
    assert both["n"] == 12 and both["missing"] == 2
    assert (both["teacher_usable"]["k"], both["natural"]["k"], both["nonsense"]["k"]) == (3, 5, 6)
    assert both["teacher_usable"]["p"] == 0.25
    human = summary["sources"]["human"]["all"]
    assert human["teacher_usable"]["k"] == human["n"] == 12 and human["missing"] == 0
    # Wilson with k = n: lower bound n / (n + z^2), upper 1.
    assert human["teacher_usable"]["low"] == pytest.approx(12 / (12 + Z * Z), abs=1e-4)
    assert human["teacher_usable"]["high"] == 1.0

    pair = summary["kappa"][0]
    assert pair["raters"] == ["ayse", "mehmet"] and pair["shared"] == 11
    assert pair["grammatical"] == 1.0  # identical on this field
    # teacher-usable: agree on 10/11; ayse 7 usable / 4 not, mehmet 8 / 3 -> chance (56 + 12) / 121.
    assert pair["teacher_usable"] == pytest.approx(42 / 53, abs=1e-4)
    # meaning (3 categories): ayse 8x2 2x0 1x1, mehmet 9x2 2x0 -> chance 76/121.
    assert pair["meaning"] == pytest.approx(34 / 45, abs=1e-4)
    assert pair["word_ok"] == pytest.approx(0.0, abs=1e-9)  # mehmet always 1, so agreement is pure chance

    checks = summary["checks"]
    assert set(checks) == {"tuned"}  # the dataset has no verdicts
    c = checks["tuned"]
    assert (c["flagged_not_usable"], c["flagged_usable"], c["passed_not_usable"], c["passed_usable"]) == (3, 1, 4, 2)
    assert (c["precision"]["k"], c["precision"]["n"], c["recall"]["k"], c["recall"]["n"]) == (3, 4, 3, 7)

    records = [json.loads(line) for line in (tmp_path / "ratings.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 11 and {r["source"] for r in records} == {"human", "tuned"}
    disputed = next(r for r in records if r["sentence"] == "Deniz mavi bir ekmek yedi.")
    assert (disputed["source"], disputed["line"], disputed["index"], disputed["word"]) == ("tuned", 2, 1, "deniz")
    assert disputed["ratings"]["ayse"]["meaning"] == 1 and disputed["ratings"]["mehmet"]["teacher_usable"] is True
    assert disputed["meaning_mean"] == 1.5 and disputed["meaning"] is None  # a tie has no majority
    assert disputed["teacher_usable"] is None and disputed["teacher_usable_mean"] == 0.5
    assert disputed["checks"] == {"passed": False, "reasons": ["word not used"]}
    agreed = next(r for r in records if r["sentence"] == "Bir bardak su içtim.")
    assert agreed["item"] == "h-1" and agreed["teacher_usable"] is True and "checks" not in agreed


def test_wilson_and_kappa_against_hand_values():
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    low, high = wilson_interval(3, 12)
    centre = (0.25 + Z * Z / 24) / (1 + Z * Z / 12)
    half = Z * math.sqrt(0.25 * 0.75 / 12 + Z * Z / (4 * 144)) / (1 + Z * Z / 12)
    assert (low, high) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(0, 0) is None
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)  # po 3/4, pe 1/2
    assert cohen_kappa([2, 1, 0, 2], [2, 1, 0, 2]) == 1.0
    assert cohen_kappa([1, 1], [1, 1]) is None  # one value only: undefined


def test_identical_raters_kappa_one_and_rater_names(sheet):
    folder, _, _ = sheet
    ayse = fill(folder, AYSE_TUNED, "ayse")
    copy = folder / "copy.csv"
    copy.write_bytes(ayse.read_bytes())
    summary = score([ayse, copy], folder / "key.csv", raters=["A", "B"])
    pair = summary["kappa"][0]
    assert pair["raters"] == ["A", "B"]
    assert all(pair[f] == 1.0 for f in ("grammatical", "meaning", "level_fit", "word_ok", "teacher_usable"))
    with pytest.raises(RatingError, match="more than one sheet"):
        score([ayse, ayse], folder / "key.csv")


def test_cli_score_prints_tables_and_json(sheet, capsys):
    folder, _, _ = sheet
    ayse, mehmet = fill(folder, AYSE_TUNED, "ayse"), fill(folder, MEHMET_TUNED, "mehmet")
    assert main(["rate", "score", str(ayse), str(mehmet), "--key", str(folder / "key.csv")]) == 0
    out = capsys.readouterr().out
    assert "source tuned" in out and "teacher-usable" in out and "25.0% [" in out and "Cohen's kappa" in out
    assert "once per rater" in out and "precision" in out
    assert main(["rate", "score", str(ayse), "--key", str(folder / "key.csv"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sources"]["tuned"]["all"]["teacher_usable"]["k"] == 1 and summary["kappa"] == []


@pytest.mark.parametrize("damage, line, column, words", [
    ("drop_column", 1, "meaning", "missing column 'meaning'"),
    ("value_3", 3, "grammatical", "'3' is not a rating; grammatical takes 0 or 1"),
    ("text", 3, "meaning", "'iyi' is not a rating; meaning takes 0 or 1 or 2"),
    ("unknown_id", 4, "id", "'s999' is not a sentence of the key"),
    ("duplicate_id", 5, "id", "'s001' is also on row 2"),
    ("empty_cell", 6, "word_ok", "empty; rate s005"),
    ("sentence_changed", 2, "sentence", "is not the sentence of s001"),
])
def test_bad_sheets_are_refused_naming_the_row(sheet, capsys, damage, line, column, words):
    folder, _, _ = sheet
    path = fill(folder, AYSE_TUNED, "ayse")
    rows = read_csv(path)
    columns = list(rows[0])
    if damage == "drop_column":
        columns.remove("meaning")
    elif damage == "value_3":
        rows[1]["grammatical"] = "3"
    elif damage == "text":
        rows[1]["meaning"] = "iyi"
    elif damage == "unknown_id":
        rows[2]["id"] = "s999"
    elif damage == "duplicate_id":
        rows[3]["id"] = rows[0]["id"]
        rows[3]["sentence"] = rows[0]["sentence"]
    elif damage == "empty_cell":
        rows[4]["word_ok"] = " "
    elif damage == "sentence_changed":
        rows[0]["sentence"] = "Başka bir cümle."
    write_csv(path, rows, columns)
    with pytest.raises(RatingError) as err:
        score([path], folder / "key.csv")
    assert len(err.value.problems) == 1
    problem = err.value.problems[0]
    assert (problem.origin, problem.field) == (f"{path}:{line}", column)
    assert words in problem.message
    assert main(["rate", "score", str(path), "--key", str(folder / "key.csv")]) == 2
    message = capsys.readouterr().err
    assert f"{path}:{line}" in message and column in message and words in message


def test_every_problem_of_every_sheet_is_listed_at_once(sheet):
    folder, _, _ = sheet
    first, second = fill(folder, AYSE_TUNED, "ayse"), fill(folder, MEHMET_TUNED, "mehmet")
    rows = read_csv(first)
    rows[0]["meaning"], rows[1]["level_fit"], rows[2]["id"] = "3", "", "x1"
    write_csv(first, rows)
    rows = read_csv(second)
    rows[5]["grammatical"] = "2"
    write_csv(second, rows)
    with pytest.raises(RatingError) as err:
        score([first, second], folder / "key.csv")
    assert [(p.origin, p.field) for p in err.value.problems] == [
        (f"{first}:2", "meaning"), (f"{first}:3", "level_fit"), (f"{first}:4", "id"), (f"{second}:7", "grammatical")]
    assert "4 problem(s)" in str(err.value)


def test_semicolon_sheet_from_a_spreadsheet_is_read(sheet):
    folder, _, _ = sheet
    rows = read_csv(fill(folder, AYSE_TUNED, "ayse"))
    path = folder / "excel.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=";")
        writer.writeheader()
        writer.writerows(rows[::-1])  # sorted differently: whole rows move, ids go with them
    summary = score([path], folder / "key.csv")
    assert summary["sources"]["tuned"]["all"]["teacher_usable"]["k"] == 1


def test_html_escapes_sentences(tmp_path):
    source = tmp_path / "evil.jsonl"
    source.write_text(json.dumps({"level": "A1", "words": ["ev"], "sentences": ["<script>alert('ev')</script> & ev"]})
                      + "\n", encoding="utf-8")
    result = make_sheet({"evil": source}, tmp_path / "out")
    page = Path(result["html"]).read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;ev&#x27;)&lt;/script&gt; &amp; ev" in page
    assert "teacher-usable = grammatical 1, meaning 2, level_fit 1, word_ok 1." in page


def test_refuses_to_overwrite_unless_forced(sheet, capsys):
    folder, _, sources = sheet
    before = (folder / "key.csv").read_text(encoding="utf-8")
    with pytest.raises(RatingError, match="--force"):
        make_sheet(sources, folder, seed=5)
    assert main(["rate", "sheet", "--source", f"human={sources['human']}", "--out", str(folder)]) == 2
    assert "already holds" in capsys.readouterr().err
    assert (folder / "key.csv").read_text(encoding="utf-8") == before
    make_sheet(sources, folder, seed=5, force=True)
    assert (folder / "key.csv").read_text(encoding="utf-8") != before


def test_per_source_sampling_and_source_problems(tmp_path, capsys):
    sources = write_sources(tmp_path)
    result = make_sheet(sources, tmp_path / "some", per_source=2, seed=3)
    assert all(c["rows"] + c["missing"] == 2 for c in result["sources"].values())
    with pytest.raises(RatingError, match="6 sentence slots, fewer than --per-source 7"):
        make_sheet(sources, tmp_path / "many", per_source=7)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"level": "A9", "words": ["ev"], "sentences": ["Ev."]}\n{"words": 3\n', encoding="utf-8")
    assert main(["rate", "sheet", "--source", f"bad={bad}", "--source", "x=nowhere.jsonl",
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:1" in err and "unknown level 'A9'" in err and f"{bad}:2" in err and "nowhere.jsonl" in err
    assert main(["rate", "sheet", "--source", str(bad), "--out", str(tmp_path / "bad")]) == 2
    assert "NAME=PATH" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cli_sheet_end_to_end(tmp_path, capsys):
    sources = write_sources(tmp_path)
    args = ["rate", "sheet", "--out", str(tmp_path / "r")]
    for name, path in sources.items():
        args += ["--source", f"{name}={path}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "11 sentences (human 6, tuned 5 (+1 missing))" in out and "keep it from the raters" in out
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["README.txt", "key.csv", "sheet.csv", "sheet.html"]


def test_docs_carry_the_rubric():
    docs = (Path(__file__).parent.parent / "docs" / "rating.md").read_text(encoding="utf-8")
    for line in (RUBRIC + RUBRIC_TR).splitlines():
        assert " ".join(line.split()) in " ".join(docs.split()), line
