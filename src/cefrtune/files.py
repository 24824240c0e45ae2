"""Files written so that a crash never leaves half of one: atomic text files, atomic folders, JSON lines.

    from cefrtune.files import write_text_atomic, atomic_folder
    write_text_atomic("runs/x/metrics.json", text)
    with atomic_folder("runs/x/adapter") as tmp:
        model.save_pretrained(tmp)

`write_text_atomic` writes a temporary file, syncs it and renames it over the target;
`atomic_folder` fills a temporary folder and swaps it in whole (`recover_folder` repairs what a
crash between two renames left). `json_line` writes one record a line with the characters other
tools take for line ends escaped. Every stage writes its files through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


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
