"""The error a user can cause and fix: a bad file, value, folder or request.

    from cefrtune.errors import UserError
    raise UserError("data/a1.jsonl:12: words: 9 words, expected 10")

Every stage raises a subclass of `UserError` (ConfigError, DataError, RequestError, ...) for a
mistake the user can correct; the `cefrtune` command prints its message in a line or two and exits
with status 2, without a traceback. Any other exception is a bug: its traceback is kept.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message says what is wrong, where, and what to do."""


class CheckpointError(UserError):
    """A checkpoint that cannot be resumed (unsafe, corrupt, or written by another configuration)."""
