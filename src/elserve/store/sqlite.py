"""SQLite behind the `Repository` interface: one table, WAL, synchronous commits."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    doc  BLOB NOT NULL,
    PRIMARY KEY (kind, key)
)
"""


class SqliteRepository:
    """A `Repository` in one SQLite file; safe to call from several threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection guarded by a lock: writes are rare and tiny, and this
        # keeps the durability story simple (every call commits before returning).
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit survives power loss, not only a killed process.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)

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
        with self._lock:
            self._conn.execute(
                "INSERT INTO documents (kind, key, doc) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc",
                (kind, key, orjson.dumps(doc)),
            )

    def create(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        with self._lock:
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO documents (kind, key, doc) VALUES (?, ?, ?)",
                (kind, key, orjson.dumps(doc)),
            )
        return cur.rowcount == 1

    def delete(self, kind: str, key: str) -> bool:
        with self._lock:
            cur = self._conn.execute("DELETE FROM documents WHERE kind = ? AND key = ?", (kind, key))
        return cur.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._conn.close()
