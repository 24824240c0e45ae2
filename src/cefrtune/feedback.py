"""Teacher feedback on generated sentences: a thumbs up or down and an optional correction per
sentence, stored in SQLite beside the run (`<run>/feedback.sqlite`, WAL mode; nothing to start).

    store = FeedbackStore("runs/a1-.../feedback.sqlite")
    store.add(level="A1", word="ev", index=1, sentence="Evde kimse yok.", rating="up")
    store.export("feedback.jsonl")

`export` writes one example per line in the dataset format (`{id, level, words, sentences,
source}`, one word and its sentence: the correction when there is one) with the rating and the
original sentence beside it, for the rating and training tools. `cefrtune serve` records
feedback through `POST /v1/feedback` and exports it at `GET /v1/feedback`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

FILENAME = "feedback.sqlite"
RATINGS = ("up", "down")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    model TEXT NOT NULL,
    level TEXT NOT NULL,
    words TEXT NOT NULL,
    item INTEGER NOT NULL,
    word TEXT NOT NULL,
    sentence TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    correction TEXT
)
"""


class FeedbackStore:
    """One SQLite file; safe to share between the server's threads."""

    def __init__(self, path: str | Path, model: str = ""):
        self.path, self.model = Path(path), model
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    def add(
        self,
        level: str,
        word: str,
        index: int,
        sentence: str,
        rating: str,
        correction: str | None = None,
        words: list[str] | None = None,
    ) -> int:
        """Store one verdict; returns its id. `index` is the sentence's number in its list (1-based)."""
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {', '.join(RATINGS)} (got {rating!r})")
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO feedback (created, model, level, words, item, word, sentence, rating, correction) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    self.model,
                    level,
                    json.dumps(words or [word], ensure_ascii=False),
                    index,
                    word,
                    sentence,
                    rating,
                    correction or None,
                ),
            )
            self._db.commit()
            return int(cursor.lastrowid)

    def records(self) -> list[dict]:
        """Every verdict, oldest first, as dataset-format examples with the verdict beside them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, created, model, level, words, item, word, sentence, rating, correction "
                "FROM feedback ORDER BY id"
            ).fetchall()
        records = []
        for id_, created, model, level, words, item, word, sentence, rating, correction in rows:
            records.append(
                {
                    "id": f"feedback-{id_}",
                    "level": level,
                    "words": [word],
                    "sentences": [correction or sentence],
                    "source": "teacher-feedback",
                    "rating": rating,
                    "original_sentence": sentence,
                    "correction": correction,
                    "list_words": json.loads(words),
                    "index": item,
                    "model": model,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
                }
            )
        return records

    def export(self, path: str | Path) -> int:
        """Write every verdict as JSONL to `path`; returns how many."""
        from cefrtune.files import write_text_atomic

        records = self.records()
        write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        return len(records)

    def close(self) -> None:
        with self._lock:
            self._db.close()
