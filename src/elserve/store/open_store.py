"""The store `elserve serve --store` names: the data directory's SQLite file, or a shared PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from elserve.store.repository import Repository


def open_store(store: str | None, sqlite_path: Path, read_only: bool = False) -> Repository:
    """`store` None: the SQLite file (the embedded default); a postgresql:// URL: that database."""
    if store is None:
        from elserve.store.sqlite import SqliteRepository

        return SqliteRepository(sqlite_path, read_only=read_only)
    from elserve.store.postgres import PostgresRepository

    return PostgresRepository(store)


def is_shared(repo: Repository) -> bool:
    """Other front ends may write this store: what this process holds in memory may be stale."""
    from elserve.store.sqlite import SqliteRepository

    return not isinstance(repo, SqliteRepository)
