"""PostgreSQL behind the `Repository` interface: the store several front ends share (`--store postgresql://`).

The same `documents` table as SQLite's (schema.py), reached through a psycopg 3 connection pool. Every
call is one autocommitted statement, so a write is durable and visible to every other front end when it
returns; `create` is one `INSERT ... ON CONFLICT DO NOTHING`, so of two front ends creating one id at
once exactly one gets True. psycopg is an optional extra (`pip install 'elserve[postgres]'`), imported
only here.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from elserve.store.schema import POSTGRES, VERSION_TABLE, now_ms, pending
from elserve.store.sqlite import StoreWriteError

log = logging.getLogger("elserve.store")

INSTALL_HINT = "a postgresql:// store needs psycopg: pip install 'elserve[postgres]'"
# The advisory lock key under which front ends starting together migrate the schema one at a time.
_MIGRATION_LOCK = 0x656C7365  # "else"
POOL_MAX_SIZE = 8  # requests query the store from the event loop's thread and a few worker threads
CONNECT_TIMEOUT_S = 10.0
# How long a call waits for a connection before it answers 503, and how long the pool keeps retrying a
# lost server in the background (backing off) before it gives up and lets the next call connect afresh:
# short, so that a server back after a long outage is used at once, not after a long backoff.
WAIT_S = 5.0


class StoreUnavailableError(StoreWriteError):
    """The shared store cannot be reached: reads fail too (503, like a write the store refused)."""


def is_postgres_url(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        parts = conninfo_to_dict(url)
    except Exception:
        return "postgresql://?"
    parts.pop("password", None)
    return make_conninfo("", **parts)


def check_store(url: str) -> tuple[str | None, int]:
    """Before serving: can the store be reached, and its schema brought to this release's? The problem
    (None: none) and the exit status it deserves: 75 (EX_TEMPFAIL) for a server that may come back,
    78 (EX_CONFIG) for a store of a later release."""
    import psycopg

    from elserve.store.schema import StoreSchemaError

    try:
        psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT_S)).close()
        PostgresRepository(url, max_size=1).close()
    except psycopg.Error as exc:
        return f"the store [{redact(url)}] cannot be reached: {str(exc).strip()}", 75
    except StoreUnavailableError as exc:
        return str(exc), 75
    except StoreSchemaError as exc:
        return f"the store [{redact(url)}] cannot be used: {exc}", 78
    return None, 0


class PostgresRepository:
    """A `Repository` in one PostgreSQL database; safe to call from several threads and processes."""

    read_only = False

    def __init__(self, url: str, max_size: int = POOL_MAX_SIZE) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError:
            raise StoreUnavailableError(INSTALL_HINT) from None
        # What a lost server or a pool with no connection to give raises: the store is unavailable.
        self._errors: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)
        self._pool_timeout = PoolTimeout  # no connection within WAIT_S: the server is away, no retry
        self._check_connection = ConnectionPool.check_connection
        self.url = url  # for the connections that are not the pool's (store/lease.py)
        self._where = redact(url)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "connect_timeout": int(CONNECT_TIMEOUT_S)},
            timeout=WAIT_S,
            reconnect_timeout=WAIT_S,
            open=False,
            name="elserve-store",
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
            applied = self._migrate()
        except Exception as exc:
            self._pool.close()
            if isinstance(exc, self._errors):
                raise StoreUnavailableError(f"the store [{self._where}] cannot be reached: {exc}") from None
            raise
        if applied:
            log.info("store [%s] upgraded to schema version %d", self._where, applied[-1])
        log.info("state in the shared store [%s]", self._where)

    def _migrate(self) -> list[int]:
        """schema.py's pending migrations in one transaction, under an advisory lock: front ends starting
        together upgrade the database once, the others wait and find it done."""
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(VERSION_TABLE)
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
            todo = pending(row[0] if row else 0, POSTGRES)
            for version, statements in todo:
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        return [version for version, _ in todo]

    def _run(self, sql: str, params: tuple[Any, ...], *, write: bool) -> Any:
        """One statement. A connection broken by a server restart fails, the pool drops it, and the call is
        tried on the next connection, up to the pool's size. Reads are not checked first (a round trip per
        request); a write's connection is, and the write itself is never sent twice: whether it was
        applied before its connection broke is unknown, and a `create` sent again would find its own row
        and answer "already exists"."""
        verb = "written" if write else "read"
        for attempt in range(self._pool.max_size + 1):
            sent = False
            try:
                with self._pool.connection() as conn:
                    if write:
                        self._check_connection(conn)
                    sent = True
                    cursor = conn.execute(sql, params)
                    return cursor.rowcount if write else cursor.fetchall()
            except self._errors as exc:
                if (write and sent) or isinstance(exc, self._pool_timeout) or attempt == self._pool.max_size:
                    raise StoreUnavailableError(f"the store could not be {verb}: {type(exc).__name__}") from None
        raise AssertionError("unreachable")

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        rows = self._run("SELECT doc::text FROM documents WHERE kind = %s AND key = %s", (kind, key), write=False)
        return orjson.loads(rows[0][0]) if rows else None

    def list(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        # COLLATE "C": ordered by code point, as SQLite's default BINARY collation orders them.
        sql = 'SELECT key, doc::text FROM documents WHERE kind = %s ORDER BY key COLLATE "C"'
        return [(key, orjson.loads(doc)) for key, doc in self._run(sql, (kind,), write=False)]

    def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        self._run(
            "INSERT INTO documents (kind, key, doc, updated_ms) VALUES (%s, %s, %s::json, %s) "
            "ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc, updated_ms = excluded.updated_ms",
            (kind, key, orjson.dumps(doc).decode(), now_ms()),
            write=True,
        )

    def create(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        sql = (
            "INSERT INTO documents (kind, key, doc, updated_ms) VALUES (%s, %s, %s::json, %s) "
            "ON CONFLICT (kind, key) DO NOTHING"
        )
        return self._run(sql, (kind, key, orjson.dumps(doc).decode(), now_ms()), write=True) == 1

    def delete(self, kind: str, key: str) -> bool:
        return self._run("DELETE FROM documents WHERE kind = %s AND key = %s", (kind, key), write=True) == 1

    def close(self) -> None:
        self._pool.close()
