"""SQLite behind the `Repository` interface: one table, WAL, synchronous commits."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from elserve.store.data_dir import restrict_to_owner

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    doc  BLOB NOT NULL,
    PRIMARY KEY (kind, key)
)
"""


class StoreWriteError(Exception):
    """A write the store could not make (read-only data directory, disk full, permissions changed)."""


class SqliteRepository:
    """A `Repository` in one SQLite file; safe to call from several threads.

    `read_only`: the data directory cannot be written; the store is read as it is (SQLite's
    `immutable`, which needs no lock files) and every write raises `StoreWriteError`.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.read_only = read_only
        self._lock = threading.Lock()
        if read_only:
            self._conn = sqlite3.connect(
                f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False, isolation_level=None
            )
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        restrict_to_owner(path.parent, 0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # SQLite's -wal and -shm copy its mode
        restrict_to_owner(path, 0o600)
        # One connection guarded by a lock: writes are rare and tiny, and this
        # keeps the durability story simple (every call commits before returning).
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit survives power loss, not only a killed process.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)
        for suffix in ("-wal", "-shm"):
            restrict_to_owner(path.with_name(path.name + suffix), 0o600)

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise StoreWriteError("the data directory cannot be written; elserve serves it read-only")
        with self._lock:
            try:
                yield self._conn
            except sqlite3.OperationalError as exc:
                raise StoreWriteError(f"the store could not be written: {exc}") from None

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT doc FROM documents WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        return orjson.loads(row[0]) if row else None

    def list(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, doc FROM documents WHERE kind = ? ORDER BY key", (kind,)
            ).fetchall()
        return [(key, orjson.loads(doc)) for key, doc in rows]

    def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO documents (kind, key, doc) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc",
                (kind, key, orjson.dumps(doc)),
            )

    def create(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        with self._writing() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO documents (kind, key, doc) VALUES (?, ?, ?)",
                (kind, key, orjson.dumps(doc)),
            )
        return cur.rowcount == 1

    def delete(self, kind: str, key: str) -> bool:
        with self._writing() as conn:
            cur = conn.execute("DELETE FROM documents WHERE kind = ? AND key = ?", (kind, key))
        return cur.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._conn.close()
