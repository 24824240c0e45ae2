"""The rate stage: blind human rating of generated (or written) sentences, and its scores.

    cefrtune rate sheet --source tuned=out.jsonl --source human=datasets/a1.jsonl --out rating/ [--per-source 100]
    cefrtune rate score ayse.csv mehmet.csv --key rating/key.csv [--json] [--out ratings.jsonl]

Automatic checks can pass a sentence a teacher would never use, so quality is measured by people:
`make_sheet` puts the sentences of several sources (`cefrtune generate --output` results, datasets
like datasets/a1.jsonl) on one shuffled sheet with opaque ids — `sheet.csv` for a spreadsheet,
`sheet.html` to print, `README.txt` with the rubric — and keeps the answer to "which source wrote
this?" in `key.csv`, which the raters never see. `score` reads each rater's filled-in copy of
sheet.csv, validates all of them at once (every problem with file:row and column), and reports per
source the share of grammatical, natural, nonsense, level-fitting, word-using and teacher-usable
sentences with 95 % Wilson intervals, per rater and over all ratings, Cohen's kappa for every pair
of raters, and, where a source carries check verdicts, how well the checks detect unusable sentences.
The rubric is RUBRIC below; docs/rating.md says how to run a rating.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import random
import textwrap
import unicodedata
from collections import Counter
from itertools import combinations
from pathlib import Path
from statistics import NormalDist

from cefrtune.examples import Problem, read_records
from cefrtune.files import write_text_atomic
from cefrtune.turkish import LEVELS

DEFAULT_SEED = 0
"""Seed of the sampling and of the sheet's order."""
SHEET_FILES = ("sheet.csv", "sheet.html", "README.txt", "key.csv")
RATING_FIELDS = {"grammatical": (0, 1), "meaning": (0, 1, 2), "level_fit": (0, 1), "word_ok": (0, 1)}
"""The sheet's rating columns and the values each takes."""
SHEET_COLUMNS = ("id", "level", "word", "sentence", *RATING_FIELDS, "comment")
KEY_COLUMNS = ("id", "source", "file", "item", "line", "index", "level", "word", "sentence", "missing",
               "checks_passed", "checks_reasons")
MEASURES = ("grammatical", "natural", "nonsense", "level_fit", "word_ok", "teacher_usable")
"""What `score` reports for each source: shares of the ratings."""
MEASURE_LABELS = {"grammatical": "grammatical", "natural": "natural (meaning 2)", "nonsense": "nonsense (meaning 0)",
                  "level_fit": "level fit", "word_ok": "word used", "teacher_usable": "teacher-usable"}
KAPPA_FIELDS = ("grammatical", "meaning", "level_fit", "word_ok", "teacher_usable")
CONFIDENCE = 0.95

RUBRIC = """\
Rate each sentence on its own. Fill in every rating cell; the comment is optional.
  grammatical 0/1: correct Turkish, letters included (İ/I, ç, ş, ğ, ö, ü, ı); a stray list number,
                   meta text or a glued foreign fragment makes it 0.
  meaning 0/1/2:   2 natural, a sentence a teacher would put on a worksheet; 1 understandable but odd
                   or tautological; 0 nonsense or contradictory.
  level_fit 0/1:   vocabulary and grammar at or below the level.
  word_ok 0/1:     uses the given word (inflected is fine) in its ordinary meaning.
  teacher-usable = grammatical 1, meaning 2, level_fit 1, word_ok 1.
Sentences are rated by someone who did not write them and is not told their source.
"""

RUBRIC_TR = """\
Her cümleyi kendi başına değerlendirin. Her puan hücresini doldurun; yorum (comment) isteğe bağlıdır.
  grammatical 0/1: Türkçesi doğru, harfleri de doğru yazılmış (İ/I, ç, ş, ğ, ö, ü, ı). Araya karışmış bir
                   liste numarası, cümleye ait olmayan bir açıklama ya da cümleye yapışmış yabancı dilde
                   bir parça varsa 0.
  meaning 0/1/2:   2 doğal, bir öğretmenin çalışma kâğıdına koyacağı bir cümle; 1 anlaşılır ama tuhaf
                   ya da totolojik; 0 anlamsız ya da çelişkili.
  level_fit 0/1:   sözcük ve dilbilgisi düzeyi verilen seviyede ya da altında.
  word_ok 0/1:     verilen sözcüğü (çekimli hâli de olur) olağan anlamıyla kullanıyor.
  Öğretmenin kullanabileceği cümle = grammatical 1, meaning 2, level_fit 1, word_ok 1.
Cümleleri, onları yazmamış ve kaynağı kendisine söylenmemiş biri değerlendirir.
"""

HOW_TO_RETURN = """\
Fill in sheet.csv in a spreadsheet (or print sheet.html and write the numbers in the boxes).
Keep the id and sentence columns as they are; sorting whole rows is fine. Save as "CSV UTF-8"
and send it back named after you, e.g. ayse.csv.
"""


class RatingError(ValueError):
    """Sources or sheets that cannot be used; `problems` lists every one, the message too."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        self.problems = problems or []
        listed = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(f"{message}{listed}")


def make_sheet(sources: dict[str, str | Path], out: str | Path, seed: int = DEFAULT_SEED,
               per_source: int | None = None, force: bool = False) -> dict:
    """Write DIR/sheet.csv, sheet.html, README.txt (what the raters get) and key.csv (what they
    must not see) for the sentences of `sources` (name -> file). `per_source` samples that many
    sentence slots of each source (seeded, without replacement). Missing sentences go to the key
    only. Returns {sheet, html, key, readme, rows, missing, sources: {name: {rows, missing}}}."""
    out = Path(out)
    if not sources:
        raise RatingError("give at least one source (--source NAME=PATH)")
    existing = [str(out / name) for name in SHEET_FILES if (out / name).exists()]
    if existing and not force:
        raise RatingError(f"{out} already holds {', '.join(existing)}; a new sheet would orphan ratings made on "
                          "the old one. Choose another --out folder, or pass --force to overwrite.")
    if per_source is not None and per_source < 1:
        raise RatingError(f"--per-source must be at least 1, got {per_source}")
    rng = random.Random(seed)
    slots, problems = [], []
    for name, path in sources.items():
        source_slots, source_problems = read_source(name, path)
        problems.extend(source_problems)
        if per_source is not None and not source_problems:
            if per_source > len(source_slots):
                problems.append(Problem(str(path), "--per-source", "too_few_sentences",
                                        f"source '{name}' has {len(source_slots)} sentence slots, fewer than "
                                        f"--per-source {per_source}; ask for at most {len(source_slots)}"))
                continue
            source_slots = rng.sample(source_slots, per_source)
        slots.extend(source_slots)
    if problems:
        raise RatingError(f"{len(problems)} problem(s) in the sources; fix them and run again:", problems)
    rng.shuffle(slots)
    on_sheet = [s for s in slots if not s["missing"]]
    missing = [s for s in slots if s["missing"]]
    width = max(3, len(str(max(len(on_sheet), len(missing)))))
    for prefix, group in (("s", on_sheet), ("m", missing)):
        for number, slot in enumerate(group, start=1):
            slot["id"] = f"{prefix}{number:0{width}d}"
    files = {name: out / name for name in SHEET_FILES}
    # The key first: a sheet without its key could be rated but never scored. The BOM makes
    # spreadsheets read the file as UTF-8 (Turkish letters intact).
    write_text_atomic(files["key.csv"], "\ufeff" + _csv_text(KEY_COLUMNS, on_sheet + missing))
    write_text_atomic(files["sheet.csv"], "\ufeff" + _csv_text(SHEET_COLUMNS, on_sheet))
    write_text_atomic(files["sheet.html"], _sheet_html(on_sheet))
    write_text_atomic(files["README.txt"], _readme_text(len(on_sheet)))
    per_name = {name: {"rows": sum(1 for s in on_sheet if s["source"] == name),
                       "missing": sum(1 for s in missing if s["source"] == name)} for name in sources}
    return {"sheet": str(files["sheet.csv"]), "html": str(files["sheet.html"]), "readme": str(files["README.txt"]),
            "key": str(files["key.csv"]), "rows": len(on_sheet), "missing": len(missing), "sources": per_name}


def score(sheets: list[str | Path], key: str | Path, raters: list[str] | None = None,
          out: str | Path | None = None) -> dict:
    """Validate the raters' filled-in sheets against the key (RatingError lists every problem),
    then summarise: per source and measure, the share over all ratings and per rater with 95 %
    Wilson intervals; Cohen's kappa for every pair of raters; the checks' confusion against
    teacher-usable. `out` also writes one JSON line per rated sentence joined with the key."""
    raters = _rater_names(sheets, raters)
    key_rows = read_key(key)
    ratings, problems = {}, []
    for rater, sheet in zip(raters, sheets):
        ratings[rater], sheet_problems = read_sheet(sheet, key_rows, key)
        problems.extend(sheet_problems)
    if problems:
        raise RatingError(f"{len(problems)} problem(s) in the sheets; nothing was scored:", problems)
    summary = _summarise(key_rows, ratings, str(key))
    if out is not None:
        write_text_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _joined(key_rows, ratings)))
        summary["ratings_file"] = str(out)
    return summary


def format_summary(summary: dict) -> str:
    """The summary as the tables `cefrtune rate score` prints."""
    raters = summary["raters"]
    lines = [f"{len(raters)} rater(s): {', '.join(raters)}; key {summary['key']}", textwrap.fill(summary["note"], 110)]
    if summary["unrated"]:
        lines.append(f"{summary['unrated']} sentence(s) of the key were rated by nobody and are left out.")
    columns = ["all"] + (raters if len(raters) > 1 else [])
    for name, source in summary["sources"].items():
        everyone = source["all"]
        lines += ["", f"source {name} ({source['file']}): {source['rated_sentences']} sentences rated, "
                      f"{everyone['ratings']} ratings, {source['missing']} missing sentence(s) counted as 0"]
        lines.append(f"  {'':22}" + "".join(f"{c:>24}" for c in columns))
        lines.append(f"  {'n':22}" + "".join(f"{_column(source, c)['n']:>24}" for c in columns))
        for measure in MEASURES:
            cells = "".join(f"{_share_text(_column(source, c)[measure]):>24}" for c in columns)
            lines.append(f"  {MEASURE_LABELS[measure]:22}{cells}")
    if summary["kappa"]:
        lines += ["", "Cohen's kappa on the sentences both raters rated:"]
        lines.append(f"  {'raters':30}{'shared':>8}" + "".join(f"{f:>16}" for f in KAPPA_FIELDS))
        for pair in summary["kappa"]:
            cells = "".join(f"{'n/a' if pair[f] is None else format(pair[f], '.3f'):>16}" for f in KAPPA_FIELDS)
            lines.append(f"  {' vs '.join(pair['raters']):30}{pair['shared']:>8}{cells}")
        lines.append("  (n/a: both raters gave one value only; kappa is undefined there)")
    for name, conf in summary["checks"].items():
        lines += ["", f"checks of {name} as a detector of not-usable sentences (each rating counts; missing "
                      "sentences left out):",
                  f"  flagged & not usable {conf['flagged_not_usable']}, flagged & usable {conf['flagged_usable']}, "
                  f"passed & not usable {conf['passed_not_usable']}, passed & usable {conf['passed_usable']}",
                  f"  checks pass rate {_share_text(conf['pass_rate'])}, teacher-usable {_share_text(conf['usable'])}",
                  f"  precision (flagged that were not usable) {_share_text(conf['precision'])}",
                  f"  recall (not usable that were flagged)    {_share_text(conf['recall'])}"]
    if summary.get("ratings_file"):
        lines += ["", f"wrote {summary['ratings_file']}"]
    return "\n".join(lines)


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion. Written out (a few lines) rather than taken
    from scipy/statsmodels: it is all `score` needs and keeps the stage free of heavy imports; z
    comes from the standard library's NormalDist. None when n is 0."""
    if n == 0:
        return None
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def cohen_kappa(first: list, second: list) -> float | None:
    """Cohen's kappa of two raters' labels for the same items (any categories), written out for the
    same reason as wilson_interval. None when it is undefined: no items, or chance agreement 1
    (both raters used one and the same value throughout)."""
    if len(first) != len(second):
        raise ValueError(f"kappa needs the same items from both raters, got {len(first)} and {len(second)}")
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    count_a, count_b = Counter(first), Counter(second)
    expected = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    if expected == 1:
        return None
    return (observed - expected) / (1 - expected)


def teacher_usable(rating: dict) -> bool:
    return (rating["grammatical"] == 1 and rating["meaning"] == 2 and rating["level_fit"] == 1
            and rating["word_ok"] == 1)


def read_source(name: str, path: str | Path) -> tuple[list[dict], list[Problem]]:
    """Every sentence slot of a source file: generate results or a dataset (JSONL or JSON list).
    A slot is {source, file, item, line, index (1-based), level, word, sentence, missing, checks}."""
    try:
        records, problems = read_records(path)
    except ValueError as err:  # DataError: no such file
        return [], [Problem(str(path), "file", "no_file", f"{err} (source '{name}')")]
    slots = []
    for origin, record in records:
        record_problems = _record_problems(record, origin)
        problems.extend(record_problems)
        if record_problems:
            continue
        sentences, checks = record["sentences"], record.get("checks")
        for i, word in enumerate(record["words"]):
            sentence = sentences[i] if i < len(sentences) else None
            sentence = " ".join(sentence.split()) if isinstance(sentence, str) else ""
            check = checks[i] if checks is not None else None
            slots.append({
                "source": name, "file": str(path), "item": record.get("id") or "",
                "line": origin.rsplit(":", 1)[1], "index": i + 1, "level": record["level"], "word": word,
                "sentence": sentence, "missing": not sentence,
                "checks_passed": "" if check is None else int(bool(check["passed"])),
                "checks_reasons": "" if check is None else "; ".join(map(str, check.get("reasons") or [])),
            })
    if not records and not problems:
        problems.append(Problem(str(path), "file", "empty", f"source '{name}' holds no word lists"))
    return slots, problems


def read_key(path: str | Path) -> dict[str, dict]:
    """The key's rows by id (RatingError when the key is missing or not a key)."""
    path = Path(path)
    if not path.exists():
        raise RatingError(f"{path}: no such key; pass the key.csv that `cefrtune rate sheet` wrote with the sheet")
    rows, header = _csv_rows(path)
    absent = [c for c in KEY_COLUMNS if c not in header]
    if absent:
        raise RatingError(f"{path}: not a rating key (missing column(s) {', '.join(absent)}); pass the key.csv "
                          "that `cefrtune rate sheet` wrote")
    key = {}
    for _, row in rows:
        row["missing"] = row["missing"] == "1"
        row["index"] = int(row["index"])
        key[row["id"]] = row
    return key


def read_sheet(path: str | Path, key: dict[str, dict], key_path: str | Path = "key.csv") -> tuple[dict, list[Problem]]:
    """One rater's ratings by id, and every problem of the sheet (file:row, column)."""
    path = Path(path)
    if not path.exists():
        return {}, [Problem(str(path), "file", "no_file", "no such sheet")]
    try:
        rows, header = _csv_rows(path)
    except UnicodeDecodeError:
        return {}, [Problem(str(path), "file", "encoding",
                            "not UTF-8 text; save the sheet from the spreadsheet as \"CSV UTF-8\"")]
    problems = []
    for column in ("id", "sentence", *RATING_FIELDS):
        if column not in header:
            problems.append(Problem(f"{path}:1", column, "missing_column",
                                    f"missing column '{column}'; keep the header row of sheet.csv "
                                    f"({', '.join(SHEET_COLUMNS)})"))
    if problems:
        return {}, problems
    ratings, seen = {}, {}
    for line, row in rows:
        where = f"{path}:{line}"
        row_id = row["id"].strip()
        if not row_id and not any((v or "").strip() for v in row.values()):
            continue  # a blank line a spreadsheet left at the end
        if row_id in seen:
            problems.append(Problem(where, "id", "duplicate_id",
                                    f"'{row_id}' is also on row {seen[row_id]}; keep one row per id"))
            continue
        seen[row_id] = line
        known = key.get(row_id)
        if known is None or known["missing"]:
            problems.append(Problem(where, "id", "unknown_id",
                                    f"'{row_id}' is not a sentence of the key {key_path}; was this sheet made with "
                                    "another key? Restore the id from sheet.csv or delete the row"))
            continue
        if _same_text(row["sentence"]) != _same_text(known["sentence"]):
            problems.append(Problem(where, "sentence", "sentence_changed",
                                    f"'{row['sentence']}' is not the sentence of {row_id} in the key "
                                    f"('{known['sentence']}'); the ratings may have slipped onto another row — "
                                    "restore the row from sheet.csv and check its ratings"))
            continue
        rating, row_ok = {}, True
        for column, allowed in RATING_FIELDS.items():
            value = (row[column] or "").strip()
            choices = " or ".join(map(str, allowed))
            if not value:
                problems.append(Problem(where, column, "empty_rating", f"empty; rate {row_id} with {choices}"))
                row_ok = False
            elif value not in {str(a) for a in allowed}:
                problems.append(Problem(where, column, "bad_rating",
                                        f"'{value}' is not a rating; {column} takes {choices}"))
                row_ok = False
            else:
                rating[column] = int(value)
        if row_ok:
            rating["comment"] = (row.get("comment") or "").strip()
            ratings[row_id] = rating
    return ratings, problems


# --- writing the sheet ------------------------------------------------------------------------------


def _record_problems(record: object, origin: str) -> list[Problem]:
    """What keeps a record from being a word list with sentences (generate output or dataset)."""
    def problem(field: str, message: str) -> Problem:
        return Problem(origin, field, "bad_record", message)

    if not isinstance(record, dict):
        return [problem("record", f"expected an object with level, words and sentences, got {type(record).__name__}")]
    problems = [problem(f, f"missing field '{f}'") for f in ("level", "words", "sentences") if f not in record]
    if problems:
        return problems
    words, sentences, checks = record["words"], record["sentences"], record.get("checks")
    if record["level"] not in LEVELS:
        problems.append(problem("level", f"unknown level {record['level']!r}; use one of {', '.join(LEVELS)}"))
    if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
        problems.append(problem("words", "must be a list of non-empty strings"))
    if not isinstance(sentences, list) or not all(s is None or isinstance(s, str) for s in sentences):
        problems.append(problem("sentences", "must be a list of strings (null for a missing sentence)"))
    elif isinstance(words, list) and len(sentences) > len(words):
        problems.append(problem("sentences", f"{len(sentences)} sentences for {len(words)} words; sentence i "
                                             "must use word i"))
    if checks is not None and (not isinstance(checks, list) or not isinstance(words, list)
                               or len(checks) != len(words)
                               or not all(isinstance(c, dict) and "passed" in c for c in checks)):
        problems.append(problem("checks", "must hold one {passed, reasons} per word, as `cefrtune generate "
                                          "--checked` writes it"))
    if "id" in record and not isinstance(record["id"], (str, int)):
        problems.append(problem("id", "must be a string"))
    return problems


def _csv_text(columns: tuple[str, ...], slots: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for slot in slots:
        writer.writerow({c: (int(v) if isinstance(v, bool) else v) for c, v in slot.items()})
    return buffer.getvalue()


def _sheet_html(rows: list[dict]) -> str:
    def esc(value) -> str:
        return html.escape(str(value), quote=True)

    body = "\n".join(
        f"<tr><td class=id>{esc(r['id'])}</td><td>{esc(r['level'])}</td><td>{esc(r['word'])}</td>"
        f"<td class=sentence>{esc(r['sentence'])}</td>" + "<td class=box></td>" * len(RATING_FIELDS)
        + "<td class=comment></td></tr>" for r in rows)
    heads = "".join(f"<th>{esc(f)}<br><small>{'/'.join(map(str, v))}</small></th>" for f, v in RATING_FIELDS.items())
    return f"""<!DOCTYPE html>
<html lang="tr"><head><meta charset="utf-8"><title>cefrtune rating sheet</title>
<style>
body {{ font-family: sans-serif; font-size: 11pt; margin: 1.5em; }}
pre {{ font-size: 9.5pt; white-space: pre-wrap; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #444; padding: 4px 6px; vertical-align: top; }}
thead {{ display: table-header-group; }}
tr {{ page-break-inside: avoid; }}
td.box {{ width: 3.2em; height: 2em; }}
td.comment {{ width: 12em; }}
td.id {{ font-family: monospace; }}
</style></head><body>
<h1>cefrtune rating sheet ({len(rows)} sentences)</h1>
<pre>{esc(RUBRIC)}</pre>
<pre lang="tr">{esc(RUBRIC_TR)}</pre>
<p>{esc(HOW_TO_RETURN)}</p>
<table><thead><tr><th>id</th><th>level</th><th>word</th><th>sentence</th>{heads}<th>comment</th></tr></thead>
<tbody>
{body}
</tbody></table></body></html>
"""


def _readme_text(rows: int) -> str:
    return (f"cefrtune rating sheet: {rows} sentences in sheet.csv (the same in sheet.html, to print).\n\n"
            f"{HOW_TO_RETURN}\nRubric\n{RUBRIC}\nÖlçüt\n{RUBRIC_TR}")


# --- reading the sheets and scoring ---------------------------------------------------------------


def _csv_rows(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """Rows with their line number, and the header (lower-cased). Accepts the ';' that spreadsheets
    set to a Turkish (or other decimal-comma) locale write."""
    text = path.read_text(encoding="utf-8-sig")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip().lower() for h in next(reader, [])]
    rows = []
    for values in reader:
        values += [""] * (len(header) - len(values))
        rows.append((reader.line_num, dict(zip(header, values))))
    return rows, header


def _same_text(sentence: str) -> str:
    """What must match between a sheet and the key: spreadsheets may change spaces or the Unicode
    form of a letter, never the words."""
    return " ".join(unicodedata.normalize("NFC", sentence or "").split())


def _rater_names(sheets: list, raters: list[str] | None) -> list[str]:
    if not sheets:
        raise RatingError("give at least one filled-in sheet")
    if raters is None:
        raters = [Path(s).stem for s in sheets]
        hint = "; name each rater with --rater (one per sheet, in order)"
    else:
        hint = ""
        if len(raters) != len(sheets):
            raise RatingError(f"{len(raters)} --rater name(s) for {len(sheets)} sheet(s); give one name per sheet")
    repeated = sorted(n for n, c in Counter(raters).items() if c > 1)
    if repeated:
        raise RatingError(f"rater name(s) {', '.join(repeated)} used for more than one sheet{hint}")
    return list(raters)


def _measures(rating: dict | None) -> dict[str, bool]:
    """One rating as the reported measures; None (a missing sentence) fails every one."""
    if rating is None:
        return {m: m == "nonsense" for m in MEASURES}
    return {"grammatical": rating["grammatical"] == 1, "natural": rating["meaning"] == 2,
            "nonsense": rating["meaning"] == 0, "level_fit": rating["level_fit"] == 1,
            "word_ok": rating["word_ok"] == 1, "teacher_usable": teacher_usable(rating)}


def _tally(items: list[dict | None]) -> dict:
    out = {"n": len(items), "ratings": sum(1 for r in items if r is not None),
           "missing": sum(1 for r in items if r is None)}
    values = [_measures(r) for r in items]
    for measure in MEASURES:
        out[measure] = _share(sum(v[measure] for v in values), len(values))
    return out


def _share(k: int, n: int) -> dict:
    interval = wilson_interval(k, n)
    return {"k": k, "n": n, "p": round(k / n, 4) if n else None,
            "low": round(interval[0], 4) if interval else None, "high": round(interval[1], 4) if interval else None}


def _summarise(key: dict[str, dict], ratings: dict[str, dict], key_path: str) -> dict:
    names = sorted({row["source"] for row in key.values()})
    rated_ids = {i for by_id in ratings.values() for i in by_id}
    sources = {}
    for name in names:
        ids = [i for i, row in key.items() if row["source"] == name and not row["missing"]]
        missing = sum(1 for row in key.values() if row["source"] == name and row["missing"])
        # Missing sentences count once per rater, so a source's missing share is the same for one
        # rater and over all ratings (a rater who rated none of the source's sentences adds nothing).
        per_rater = {}
        for rater, by_id in ratings.items():
            given = [by_id[i] for i in ids if i in by_id]
            per_rater[rater] = given + [None] * missing if given or not ids else []
        sources[name] = {
            "file": next(row["file"] for row in key.values() if row["source"] == name),
            "sentences": len(ids), "rated_sentences": sum(1 for i in ids if i in rated_ids), "missing": missing,
            "all": _tally([r for items in per_rater.values() for r in items]),
            "raters": {rater: _tally(items) for rater, items in per_rater.items()},
        }
    kappa = []
    for a, b in combinations(ratings, 2):
        shared = [i for i in ratings[a] if i in ratings[b]]
        pair = {"raters": [a, b], "shared": len(shared)}
        for field in KAPPA_FIELDS:
            labels = [[teacher_usable(r[i]) if field == "teacher_usable" else r[i][field] for i in shared]
                      for r in (ratings[a], ratings[b])]
            pair[field] = _round(cohen_kappa(*labels))
        kappa.append(pair)
    checks = {}
    for name in names:
        verdicts = {i: row["checks_passed"] == "1" for i, row in key.items()
                    if row["source"] == name and not row["missing"] and row["checks_passed"] != ""}
        if verdicts:
            checks[name] = _confusion([(verdicts[i], teacher_usable(by_id[i]))
                                       for by_id in ratings.values() for i in by_id if i in verdicts])
    note = ("Figures over all ratings count each rater's rating of a sentence once (a sentence rated by two raters "
            "counts twice). Missing sentences (the source wrote none; not on the sheet) count as not usable on "
            "every field (nonsense included), once per rater. 95 % Wilson intervals in brackets.")
    return {"raters": list(ratings), "key": key_path, "note": note,
            "unrated": sum(1 for i, row in key.items() if not row["missing"] and i not in rated_ids),
            "sources": sources, "kappa": kappa, "checks": checks}


def _confusion(pairs: list[tuple[bool, bool]]) -> dict:
    """Checks as a detector of not-usable sentences: a flagged sentence is a positive."""
    flagged_not_usable = sum(1 for passed, usable in pairs if not passed and not usable)
    flagged_usable = sum(1 for passed, usable in pairs if not passed and usable)
    passed_not_usable = sum(1 for passed, usable in pairs if passed and not usable)
    return {"ratings": len(pairs), "flagged_not_usable": flagged_not_usable, "flagged_usable": flagged_usable,
            "passed_not_usable": passed_not_usable,
            "passed_usable": len(pairs) - flagged_not_usable - flagged_usable - passed_not_usable,
            "pass_rate": _share(sum(1 for passed, _ in pairs if passed), len(pairs)),
            "usable": _share(sum(1 for _, usable in pairs if usable), len(pairs)),
            "precision": _share(flagged_not_usable, flagged_not_usable + flagged_usable),
            "recall": _share(flagged_not_usable, flagged_not_usable + passed_not_usable)}


def _joined(key: dict[str, dict], ratings: dict[str, dict]) -> list[dict]:
    """One record per sentence someone rated: the key's row, every rating, majority and mean."""
    records = []
    for row_id, row in key.items():
        given = {rater: by_id[row_id] for rater, by_id in ratings.items() if row_id in by_id}
        if not given:
            continue
        record = {"id": row_id, "source": row["source"], "file": row["file"], "item": row["item"] or None,
                  "line": int(row["line"]), "index": row["index"], "level": row["level"], "word": row["word"],
                  "sentence": row["sentence"],
                  "ratings": {r: dict(v, teacher_usable=teacher_usable(v)) for r, v in given.items()}}
        values = list(record["ratings"].values())
        for field in (*RATING_FIELDS, "teacher_usable"):
            numbers = [int(v[field]) for v in values]
            record[f"{field}_mean"] = round(sum(numbers) / len(numbers), 4)
            top = Counter(numbers).most_common(2)
            majority = top[0][0] if len(top) == 1 or top[0][1] > top[1][1] else None  # None on a tie
            record[field] = bool(majority) if field == "teacher_usable" and majority is not None else majority
        if row["checks_passed"] != "":
            record["checks"] = {"passed": row["checks_passed"] == "1",
                                "reasons": [r for r in row["checks_reasons"].split("; ") if r]}
        records.append(record)
    return records


def _column(source: dict, column: str) -> dict:
    return source["all"] if column == "all" else source["raters"][column]


def _share_text(share: dict) -> str:
    if share["p"] is None:
        return "-"
    return f"{100 * share['p']:.1f}% [{100 * share['low']:.1f}, {100 * share['high']:.1f}]"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
