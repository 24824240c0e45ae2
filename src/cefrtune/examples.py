"""The list-format example: a level, N target words and N sentences (sentence i uses word i).

Reads JSONL (one example a line, the form the repository keeps) and a JSON list (the form of the
seed run's `training_data_a1_list_format_{train,eval}.json`), keeping each example's line number so
every problem can be reported as `file:line`. Writes atomically (temp file, then rename).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cefrtune.errors import UserError
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
                Problem(f"{path}:{lineno}", "json", "malformed_json", f"not valid JSON (column {err.colno}: {err.msg}); one example a line")
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
            add(name, "extra_field", f"unknown field '{name}' (allowed: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})")
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
        add("sentences", "count_mismatch", f"{len(words)} words but {len(sentences)} sentences; sentence i must use word i")
    for name, value in lists.items():
        if n is not None and len(value) != n:
            add(name, "wrong_count", f"{len(value)} {name}, expected {n} (set --n to change)")
    if words is not None:
        seen: dict[str, int] = {}
        for i, word in enumerate(words):
            key = word.strip().casefold()
            if key in seen:
                add(f"words[{i}]", "duplicate_word", f"'{word}' is also words[{seen[key]}]; the words of an example must differ")
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


def json_line(record) -> str:
    """One JSON line, with the characters other tools take for line ends (U+2028, U+2029,
    U+0085) escaped, so that every line reader sees one record a line."""
    text = json.dumps(record, ensure_ascii=False)
    for char in ("\u2028", "\u2029", "\u0085"):
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text + "\n"


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a file so that a crash leaves either the old or the new content, never half: a
    temporary file, synced to disk, renamed over the target; permissions follow the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


@contextlib.contextmanager
def atomic_folder(target: str | Path):
    """Yield a temporary folder beside `target`; on success it replaces `target` whole, on an
    error it is removed and `target` stays as it was.

    The replacement is one atomic step where the file system allows it (Linux renameat2 with
    RENAME_EXCHANGE swaps the two folders); elsewhere the old folder is first renamed to
    `.<name>.old`, and `recover_folder` (run here first, and before a resume) puts it back when a
    crash fell between the two renames. Files are synced to disk before the swap."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield tmp
        _settle(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not target.exists():
        os.replace(tmp, target)
    elif _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # it now holds the old folder
    else:
        old = target.with_name(f".{target.name}.old")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_folder(target.parent)


def recover_folder(target: str | Path) -> None:
    """Undo what a crash inside `atomic_folder` left: a `.<name>.old` without `<name>` is the last
    complete folder and is put back; one beside `<name>`, and unfinished temporaries, are removed."""
    target = Path(target)
    old = target.with_name(f".{target.name}.old")
    if old.is_dir():
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, target)
    if target.parent.is_dir():
        for leftover in target.parent.glob(f".{target.name}-*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the
    system or file system cannot."""
    import ctypes
    import errno
    import sys

    if sys.platform != "linux":
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _settle(folder: Path) -> None:
    """Sync every file under `folder` to disk and give it the permissions the umask allows
    (mkdtemp makes a 0700 folder)."""
    mask = _umask()
    for root, dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(path, 0o666 & ~mask)  # safetensors writes its files 0600
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        _fsync_folder(Path(root))
    os.chmod(folder, 0o777 & ~mask)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the files themselves are synced
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
