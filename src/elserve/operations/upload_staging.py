"""An upload's files while it waits for its last part (`<staging>/<model_id>/`), written and removed so
that a crash leaves whole files or none (operations/model_upload.py drives them).

`parts.json` holds the totals the first part announced; `part-00000`, ... the definition's parts. What is
deleted is first renamed to a hidden `.deleted-` name, removed outside the uploads' lock (and at the next
start, if a crash came first).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("elserve.models")

META = "parts.json"
PART = "part-{:05d}"
TRASH_PREFIX = ".deleted-"


@dataclass
class Staged:
    """What one upload has stored so far (read from its directory once, then kept up to date)."""

    parts: int = 0
    bytes: int = 0

    @classmethod
    def read(cls, directory: Path) -> Staged:
        staged = cls()
        for path in directory.glob("part-*") if directory.is_dir() else []:
            staged.parts += 1
            staged.bytes += path.stat().st_size
        return staged


def read_meta(directory: Path) -> dict[str, int] | None:
    """The totals of an upload's parts, None before its first part."""
    try:
        return json.loads((directory / META).read_text())
    except FileNotFoundError:
        return None


def write_whole(path: Path, data: bytes) -> None:
    """Write `path` so that it is either absent or complete, even after a crash."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def move_to_trash(path: Path) -> Path | None:
    """Rename `path` (if it exists) to a hidden name beside it, to be removed outside the lock."""
    if not path.exists():
        return None
    renamed = path.with_name(f"{TRASH_PREFIX}{path.name}-{uuid.uuid4().hex}")
    try:
        os.rename(path, renamed)
    except OSError as e:  # a read-only directory: what stays is removed at the next start
        log.warning("cannot remove [%s] now (%s); it is removed at the next start", path, e.strerror)
        return None
    return renamed


def remove(path: Path | None) -> None:
    if path is None:
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
