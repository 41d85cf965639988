"""The numbered migrations (schema.py) applied to a SQLite store."""

from __future__ import annotations

import sqlite3

from elserve.store.schema import SQLITE, VERSION_TABLE, pending


def applied_version(conn: sqlite3.Connection) -> int:
    """The store's schema version: 0 for an empty file, 1 for a store from before versions were recorded."""
    if _has_version_table(conn):
        return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
    has_documents = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'documents'")
    return 1 if has_documents.fetchone() is not None else 0


def _has_version_table(conn: sqlite3.Connection) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    return conn.execute(sql).fetchone() is not None


def migrate_sqlite(conn: sqlite3.Connection) -> list[int]:
    """Bring the store (a connection in autocommit mode) to the current schema; the versions applied.
    `BEGIN IMMEDIATE` takes the write lock first, so two processes opening one file upgrade it once."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        applied = applied_version(conn)
        todo = pending(applied, SQLITE)
        if todo:
            if applied and not _has_version_table(conn):
                # A store from before versions were recorded: version 1 is what it holds.
                conn.execute(VERSION_TABLE)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (applied,))
            conn.execute(VERSION_TABLE)
            for version, statements in todo:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return [version for version, _ in todo]
