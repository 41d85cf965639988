"""SQLite behind the `Repository` interface: one table, WAL, synchronous commits."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

from elserve.store.data_dir import keep_reserve, release_reserve, restrict_to_owner
from elserve.store.schema import now_ms
from elserve.store.sqlite_schema import migrate_sqlite


class StoreWriteError(Exception):
    """A write the store could not make (read-only data directory, disk full, permissions changed)."""


class StoreUnreadable(Exception):
    """The store file exists but holds no store: empty (0 bytes) or not an SQLite database. Starting on it
    as on a fresh install would silently drop every user, endpoint and key, so it is refused."""


def _check_not_empty(path: Path) -> None:
    """A fresh install has no store file; an empty one is a store that lost its content (a failed copy, a
    truncation), unless SQLite still has it all in its write-ahead log."""
    try:
        if path.stat().st_size > 0:
            return
    except FileNotFoundError:
        return
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return
    raise StoreUnreadable(
        f"the store [{path}] is empty (0 bytes): it is not a fresh install, which has no store file. "
        "Restore it from a backup, or remove it to start afresh (every user, endpoint and key is then gone)"
    )


class SqliteRepository:
    """A `Repository` in one SQLite file; safe to call from several threads.

    `read_only`: the data directory cannot be written; the store is read as it is (SQLite's
    `immutable`, which needs no lock files) and every write raises `StoreWriteError`.
    """

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.read_only = read_only
        self._path = path
        self._lock = threading.Lock()
        _check_not_empty(path)
        if read_only:
            self._conn = sqlite3.connect(
                f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False, isolation_level=None
            )
            self._check_readable(path)
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        restrict_to_owner(path.parent, 0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # SQLite's -wal and -shm copy its mode
        restrict_to_owner(path, 0o600)
        # One connection guarded by a lock: writes are rare and tiny, and this
        # keeps the durability story simple (every call commits before returning).
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._check_readable(path)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit survives power loss, not only a killed process.
            self._conn.execute("PRAGMA synchronous=FULL")
            migrate_sqlite(self._conn)  # schema.py: an older store upgrades in place
        for suffix in ("-wal", "-shm"):
            restrict_to_owner(path.with_name(path.name + suffix), 0o600)
        keep_reserve(path.parent)

    def _check_readable(self, path: Path) -> None:
        """Read the schema once: a file that is not an SQLite database fails here, with its reason."""
        try:
            self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise StoreUnreadable(f"the store [{path}] cannot be read: {exc}") from None

    def _write(self, sql: str, params: tuple[Any, ...], frees_space: bool = False) -> int:
        """Run one write; its row count. On a full disk a write that frees space (a delete) gives back
        the reserve and is tried again, so that deleting what fills the disk always works; others fail."""
        if self.read_only:
            raise StoreWriteError("the data directory cannot be written; elserve serves it read-only")
        with self._lock:
            try:
                try:
                    count = self._conn.execute(sql, params).rowcount
                except sqlite3.OperationalError as exc:
                    if not (frees_space and _is_full(exc) and release_reserve(self._path.parent)):
                        raise
                    count = self._conn.execute(sql, params).rowcount
            except sqlite3.OperationalError as exc:
                if _is_full(exc):
                    raise StoreWriteError("the store could not be written: the disk is full") from None
                raise StoreWriteError(f"the store could not be written: {exc}") from None
            if not frees_space:
                keep_reserve(self._path.parent)  # back once the disk has room again
        return count

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT doc FROM documents WHERE kind = ? AND key = ?", (kind, key)).fetchone()
        return orjson.loads(row[0]) if row else None

    def list(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute("SELECT key, doc FROM documents WHERE kind = ? ORDER BY key", (kind,)).fetchall()
        return [(key, orjson.loads(doc)) for key, doc in rows]

    def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO documents (kind, key, doc, updated_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc, updated_ms = excluded.updated_ms",
            (kind, key, orjson.dumps(doc), now_ms()),
        )

    def create(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        sql = "INSERT OR IGNORE INTO documents (kind, key, doc, updated_ms) VALUES (?, ?, ?, ?)"
        return self._write(sql, (kind, key, orjson.dumps(doc), now_ms())) == 1

    def delete(self, kind: str, key: str) -> bool:
        sql = "DELETE FROM documents WHERE kind = ? AND key = ?"
        return self._write(sql, (kind, key), frees_space=True) == 1

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _is_full(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
