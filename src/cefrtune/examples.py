"""The list-format example: a level, N target words and N sentences (sentence i uses word i).

Reads JSONL (one example a line, the form the repository keeps) and a JSON list (the form of the
seed run's `training_data_a1_list_format_{train,eval}.json`), keeping each example's line number so
every problem can be reported as `file:line`. Writes through cefrtune.files (atomically).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cefrtune.errors import UserError
from cefrtune.files import json_line, write_text_atomic
from cefrtune.turkish import LEVELS

REQUIRED_FIELDS = ("level", "words", "sentences")
OPTIONAL_FIELDS = ("id", "source")


@dataclass
class Example:
    level: str
    words: list[str]
    sentences: list[str]
    id: str | None = None
    source: str | None = None
    # Where the example came from, for error messages: "data/a1.jsonl:12".
    origin: str = field(default="", compare=False)

    def to_json(self) -> dict:
        record = {"level": self.level, "words": self.words, "sentences": self.sentences}
        if self.id is not None:
            record = {"id": self.id, **record}
        if self.source is not None:
            record["source"] = self.source
        return record


@dataclass
class Problem:
    """One thing wrong (or suspicious) in a data file."""

    origin: str  # file:line
    field: str  # "sentences[3]", "words", "json", ...
    kind: str  # machine-readable kind: "malformed_json", "target_word_missing", ...
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        return f"{self.origin}: {self.severity}: [{self.kind}] {self.field}: {self.message}"


class DataError(UserError, ValueError):
    """Raised when a data file cannot be used; the message lists every problem."""


def load_examples(path: str | Path, n: int | None = None) -> list[Example]:
    """Read examples, raising DataError listing every schema problem (no Turkish checks)."""
    records, problems = read_records(path)
    examples = []
    for origin, record in records:
        example, record_problems = parse_record(record, origin, n)
        problems.extend(record_problems)
        if example is not None:
            examples.append(example)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        listed = "\n".join(f"  {p}" for p in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        raise DataError(
            f"{path}: {len(errors)} problem(s); run `cefrtune data validate {path}` for the full report:\n"
            f"{listed}{more}"
        )
    return examples


def read_records(path: str | Path) -> tuple[list[tuple[str, object]], list[Problem]]:
    """Raw JSON records with their `file:line` origin; malformed lines become problems."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file; give a JSONL or JSON list of examples")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8") \
            from None
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    stripped = text.lstrip()
    records: list[tuple[str, object]] = []
    problems: list[Problem] = []
    if not stripped:
        problems.append(Problem(f"{path}:1", "file", "empty_file", "the file holds no example"))
        return records, problems
    if stripped.startswith("["):
        try:
            data = _loads(text)
        except json.JSONDecodeError as err:
            problems.append(Problem(f"{path}:{err.lineno}", "json", "malformed_json", f"not valid JSON: {err.msg}"))
            return records, problems
        except RecursionError:
            problems.append(Problem(f"{path}:1", "json", "too_deep",
                                    "nested too deeply to read (an example is an object of lists)"))
            return records, problems
        if not data:
            problems.append(Problem(f"{path}:1", "file", "empty_file", "the JSON list holds no example"))
        lines = _record_lines(text, len(data))
        for i, record in enumerate(data):
            records.append((f"{path}:{lines[i]}", record))
        return records, problems
    # Lines end at "\n" only: U+2028, U+0085 and the like are characters inside a JSON string.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:{lineno}", _loads(line)))
        except json.JSONDecodeError as err:
            problems.append(
                Problem(
                    f"{path}:{lineno}",
                    "json",
                    "malformed_json",
                    f"not valid JSON (column {err.colno}: {err.msg}); one example a line",
                )
            )
        except RecursionError:
            problems.append(Problem(f"{path}:{lineno}", "json", "too_deep",
                                    "nested too deeply to read (an example is an object of lists)"))
    return records, problems


def _loads(text: str):
    """json.loads; nesting deeper than the interpreter's recursion limit (about 1000 levels, an
    example needs 3) raises RecursionError, which the readers report as a problem."""
    return json.loads(text)


def parse_record(record: object, origin: str, n: int | None = None) -> tuple[Example | None, list[Problem]]:
    """Check one record's schema; return the Example (or None) and the problems found."""
    problems: list[Problem] = []

    def add(field_name: str, kind: str, message: str) -> None:
        problems.append(Problem(origin, field_name, kind, message))

    if not isinstance(record, dict):
        add("record", "wrong_type", f"an example must be a JSON object, got {type(record).__name__}")
        return None, problems
    for name in REQUIRED_FIELDS:
        if name not in record:
            add(name, "missing_field", f"missing required field '{name}'")
    for name in record:
        if name not in REQUIRED_FIELDS + OPTIONAL_FIELDS:
            add(
                name, "extra_field", f"unknown field '{name}' (allowed: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})"
            )
    level = record.get("level")
    if "level" in record:
        if not isinstance(level, str):
            add("level", "wrong_type", f"level must be a string, got {type(level).__name__}")
        elif level not in LEVELS:
            add("level", "unknown_level", f"unknown level '{level}'; use one of {', '.join(LEVELS)}")
    for name in ("id", "source"):
        if name in record and not isinstance(record[name], str):
            add(name, "wrong_type", f"{name} must be a string, got {type(record[name]).__name__}")
    lists = {}
    for name in ("words", "sentences"):
        value = record.get(name)
        if name not in record:
            continue
        if not isinstance(value, list):
            add(name, "wrong_type", f"{name} must be a list of strings, got {type(value).__name__}")
            continue
        ok = True
        for i, item in enumerate(value):
            if not isinstance(item, str):
                add(f"{name}[{i}]", "wrong_type", f"must be a string, got {type(item).__name__}")
                ok = False
            elif not item.strip():
                add(f"{name}[{i}]", "empty_string", "empty or whitespace-only")
                ok = False
            elif invisible_characters(item):
                add(f"{name}[{i}]", "invisible_character",
                    f"holds {', '.join(invisible_characters(item))}; delete it: '{item}'")
                ok = False
        if ok:
            lists[name] = value
    words, sentences = lists.get("words"), lists.get("sentences")
    if words is not None and sentences is not None and len(words) != len(sentences):
        add(
            "sentences",
            "count_mismatch",
            f"{len(words)} words but {len(sentences)} sentences; sentence i must use word i",
        )
    for name, value in lists.items():
        if n is not None and len(value) != n:
            add(name, "wrong_count", f"{len(value)} {name}, expected {n} (set --n to change)")
    if words is not None:
        seen: dict[str, int] = {}
        for i, word in enumerate(words):
            key = word.strip().casefold()
            if key in seen:
                add(
                    f"words[{i}]",
                    "duplicate_word",
                    f"'{word}' is also words[{seen[key]}]; the words of an example must differ",
                )
            seen.setdefault(key, i)
    if problems:
        return None, problems
    return (
        Example(
            level=level,
            words=[w.strip() for w in words],
            sentences=[s.strip() for s in sentences],
            id=record.get("id"),
            source=record.get("source"),
            origin=origin,
        ),
        problems,
    )


def invisible_characters(text: str) -> list[str]:
    """Names of the invisible, control and direction characters in `text` (zero-width spaces,
    bidi marks and overrides, soft hyphens, BOMs, ...): `U+200B ZERO WIDTH SPACE`."""
    import unicodedata

    found = []
    for char in dict.fromkeys(text):
        if unicodedata.category(char) in ("Cf", "Cc", "Co", "Cs", "Zl", "Zp") and char not in "\t":
            found.append(f"U+{ord(char):04X} {unicodedata.name(char, 'control character')}")
    return found


def write_examples(path: str | Path, examples: list[Example], as_json_list: bool = False) -> None:
    """Write examples as JSONL (default) or a JSON list, atomically."""
    if as_json_list:
        text = json.dumps([e.to_json() for e in examples], ensure_ascii=False, indent=2) + "\n"
    else:
        text = "".join(json_line(e.to_json()) for e in examples)
    write_text_atomic(path, text)


def _record_lines(text: str, count: int) -> list[int]:
    """Line number where each top-level object of a JSON list starts (for file:line)."""
    decoder = json.JSONDecoder()
    lines = []
    index = text.index("[") + 1
    for _ in range(count):
        while text[index] in " \t\r\n,":
            index += 1
        lines.append(text.count("\n", 0, index) + 1)
        _, index = decoder.raw_decode(text, index)
    return lines
