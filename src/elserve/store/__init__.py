"""Persistence behind a small repository interface (SQLite by default)."""

from elserve.store.repository import Repository
from elserve.store.sqlite import SqliteRepository

__all__ = ["Repository", "SqliteRepository"]
