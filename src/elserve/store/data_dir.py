"""The data directory: owner-only, and whether it can be written at all.

It holds the password hashes and API keys (`elserve.db`), so it is created 0700 and
the store's files 0600 (`SqliteRepository`); elserve runs under umask 077.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

STORE_FILE = "elserve.db"
# Space set aside beside the store while the disk has room, given back when the disk is full so that
# the store can still record deletes (which free space) and a full disk still starts.
RESERVE_FILE = "elserve.db.reserve"
RESERVE_BYTES = 4 * 2**20
_PROBE = ".elserve-write-probe"


@dataclass(frozen=True)
class DataDirCheck:
    """`problem` is None when the directory can be written; `readable_store`: an existing store can be read;
    `disk_full`: the problem is a full disk (no reserve left to give back)."""

    problem: str | None
    readable_store: bool
    disk_full: bool = False
    # The reserve was given back to let a full disk start: say so, the disk needs room.
    reserve_released: bool = False


def _probe(data_dir: Path) -> None:
    probe = data_dir / _PROBE
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        probe.unlink(missing_ok=True)


def check_data_dir(data_dir: Path) -> DataDirCheck:
    """Create the directory if needed (0700) and prove it writable with a probe file, as a write would.
    On a full disk the reserve is given back and the probe tried again."""
    released = False
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            _probe(data_dir)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not release_reserve(data_dir):
                raise
            released = True
            _probe(data_dir)
        return DataDirCheck(None, True, reserve_released=released)
    except OSError as exc:
        store = data_dir / STORE_FILE
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        problem = f"{type(exc).__name__}: {exc}"
        if full:
            problem = f"the disk is full ({shutil.disk_usage(data_dir).free} bytes free): {exc.strerror}"
        return DataDirCheck(problem, store.is_file() and os.access(store, os.R_OK), disk_full=full)


def release_reserve(data_dir: Path) -> bool:
    """Give the reserve's space back to the disk; False when there was none."""
    try:
        (data_dir / RESERVE_FILE).unlink()
        return True
    except FileNotFoundError:
        return False


def keep_reserve(data_dir: Path) -> None:
    """Set the reserve aside if it is missing and the disk has room for it (best effort)."""
    path = data_dir / RESERVE_FILE
    if path.exists():
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)  # real blocks: a sparse file would reserve nothing
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def restrict_to_owner(path: Path, mode: int) -> None:
    """chmod, where the file exists and is ours to change (best effort: a read-only tree stays as it is)."""
    try:
        if path.exists() and path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except OSError:
        pass
