"""Safe writes: paths no one else has (report folders, batches) and files replaced whole."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from .errors import ProjectError


def claim_new_path(folder: Path, stem: str, suffix: str = "", *, directory: bool = False) -> Path:
    """`folder/<stem><suffix>`, else `<stem>-1<suffix>`, `-2`...: the first that did not exist.

    It is created atomically (mkdir, or an exclusive open of an empty file), so two runs in the
    same second never share a path and nothing earlier is overwritten.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        candidate = folder / f"{stem if attempt == 0 else f'{stem}-{attempt}'}{suffix}"
        try:
            if directory:
                candidate.mkdir()
            else:
                candidate.open("x").close()
        except FileExistsError:
            continue
        return candidate
    raise ProjectError(f"{folder}: cannot create a new {stem}{suffix}; fix: clean it up")


def utc_stamp(now: datetime) -> str:
    """The time stamp that names reports and batches (sorts by time)."""
    return now.strftime("%Y%m%dT%H%M%SZ")


def write_whole(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: a reader, or a full disk, never sees half of it.

    Written to a temporary name beside it, then renamed over it; on failure the temporary file
    is removed and the old file is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
        raise
