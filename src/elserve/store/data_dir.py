"""The data directory: owner-only, and whether it can be written at all.

It holds the password hashes and API keys (`elserve.db`), so it is created 0700 and
the store's files 0600 (`SqliteRepository`); elserve runs under umask 077.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

STORE_FILE = "elserve.db"
_PROBE = ".elserve-write-probe"


@dataclass(frozen=True)
class DataDirCheck:
    """`problem` is None when the directory can be written; `readable_store`: an existing store can be read."""

    problem: str | None
    readable_store: bool


def check_data_dir(data_dir: Path) -> DataDirCheck:
    """Create the directory if needed (0700) and prove it writable with a probe file, as a write would."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = data_dir / _PROBE
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
        probe.unlink()
        return DataDirCheck(None, True)
    except OSError as exc:
        store = data_dir / STORE_FILE
        return DataDirCheck(f"{type(exc).__name__}: {exc}", store.is_file() and os.access(store, os.R_OK))


def restrict_to_owner(path: Path, mode: int) -> None:
    """chmod, where the file exists and is ours to change (best effort: a read-only tree stays as it is)."""
    try:
        if path.exists() and path.stat().st_mode & 0o777 != mode:
            path.chmod(mode)
    except OSError:
        pass
