"""A lease several front ends contend for: exactly one holds it at a time, and it passes on when its
holder dies.

On PostgreSQL it is a session-level advisory lock (`pg_try_advisory_lock`) taken on a connection of its
own, outside the pool: the server releases it when that connection ends, which a killed process's
does at once (its socket is closed by the kernel) and a lost machine's does when the server's TCP
keepalive gives up on it. The holder checks its connection on each `held()`: a holder cut off from the
server (which then frees the lock for another) stops holding it there and then. On SQLite (one front
end per store) the lease is always held.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any, Protocol

from elserve.store.repository import Repository

log = logging.getLogger("elserve.store")

# The advisory lock keys of the leases (the migration lock is postgres.py's `_MIGRATION_LOCK`).
SCALER_LEASE = 0x656C7366  # "elsf": the owner of the Serve applications and their adaptive scaling
_CONNECT_TIMEOUT_S = 5


class Lease(Protocol):
    def held(self) -> bool:
        """Whether this process holds the lease now, taking it when it is free. Blocking (a round trip to
        the store): call it from a thread."""
        ...

    def close(self) -> None:
        """Give the lease up (another front end takes it at its next try)."""
        ...


class AlwaysHeld:
    """The lease of a store only one front end uses."""

    def held(self) -> bool:
        return True

    def close(self) -> None:
        pass


class AdvisoryLease:
    """A PostgreSQL session-level advisory lock on a dedicated connection."""

    def __init__(self, url: str, key: int) -> None:
        self._url = url
        self._key = key
        self._conn: Any = None
        self._held = False
        self._lock = threading.Lock()  # one check at a time: the connection is not shared between threads

    def held(self) -> bool:
        import psycopg

        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._held = False
                    self._conn = psycopg.connect(
                        self._url,
                        autocommit=True,
                        connect_timeout=_CONNECT_TIMEOUT_S,
                        # A holder whose machine vanished: its side notices within seconds too.
                        keepalives=1,
                        keepalives_idle=5,
                        keepalives_interval=2,
                        keepalives_count=3,
                    )
                if self._held:
                    self._conn.execute("SELECT 1")  # still connected: still the holder
                else:
                    row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
                    self._held = bool(row and row[0])
            except psycopg.Error as exc:
                if self._held:
                    log.warning("lost the lease [%#x]: %s", self._key, str(exc).strip())
                self._held = False
                self._drop()
            return self._held

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self._lock:
            if self._held and self._conn is not None:
                # At once: the session's end frees it too, but a moment after the connection closes.
                with contextlib.suppress(Exception):
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            self._held = False
            self._drop()


def open_lease(repo: Repository, key: int) -> Lease:
    """The lease `key` in this store: an advisory lock in a shared PostgreSQL, always held otherwise."""
    from elserve.store.postgres import PostgresRepository

    if isinstance(repo, PostgresRepository):
        return AdvisoryLease(repo.url, key)
    return AlwaysHeld()
