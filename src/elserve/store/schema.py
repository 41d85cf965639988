"""The store's schema as numbered migrations, one list per SQL dialect, and the runner that applies them.

Version N is the list's N-th entry. A store records the versions applied in `schema_version`; at start
the missing ones run in one transaction with their version rows, under the store's write lock, so an
older store upgrades in place, a crash mid-upgrade leaves the old version whole, and front ends starting
together upgrade it once. A store made before versions were recorded
(the `documents` table alone) is version 1: migration 1 creates that table only if it is missing.
Entries are never edited once released: a change is a new entry at the end.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

SQLITE: tuple[tuple[str, ...], ...] = (
    # 1: the documents, `(kind, key) -> JSON`, as every release before versions wrote them.
    (
        """CREATE TABLE IF NOT EXISTS documents (
            kind TEXT NOT NULL,
            key  TEXT NOT NULL,
            doc  BLOB NOT NULL,
            PRIMARY KEY (kind, key)
        )""",
    ),
    # 2: when each document was last written (ms since the epoch; 0: before this version), so that a
    # front end can tell what changed since it last looked.
    ("ALTER TABLE documents ADD COLUMN updated_ms INTEGER NOT NULL DEFAULT 0",),
)

POSTGRES: tuple[tuple[str, ...], ...] = (
    # `json`, not `jsonb`: a document comes back with its keys in the order it was written, as from SQLite.
    (
        """CREATE TABLE IF NOT EXISTS documents (
            kind TEXT NOT NULL,
            key  TEXT NOT NULL,
            doc  JSON NOT NULL,
            PRIMARY KEY (kind, key)
        )""",
    ),
    ("ALTER TABLE documents ADD COLUMN updated_ms BIGINT NOT NULL DEFAULT 0",),
)

VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY)"
CURRENT_VERSION = len(SQLITE)
assert len(POSTGRES) == CURRENT_VERSION, "every migration exists in both dialects"


class StoreSchemaError(Exception):
    """The store's schema is newer than this elserve knows: it was written by a later release."""


def pending(applied: int, migrations: Sequence[tuple[str, ...]]) -> list[tuple[int, tuple[str, ...]]]:
    """The migrations still to run after version `applied`, numbered; refuses a store from the future."""
    if applied > len(migrations):
        raise StoreSchemaError(
            f"the store has schema version {applied}, newer than this elserve's {len(migrations)}: "
            "it was written by a later release; run that release, or a newer one"
        )
    return [(number, migrations[number - 1]) for number in range(applied + 1, len(migrations) + 1)]


def now_ms() -> int:
    """A document's `updated_ms`."""
    return int(time.time() * 1000)
