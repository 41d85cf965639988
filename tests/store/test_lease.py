"""The scaler's lease (store/lease.py) against a real PostgreSQL: one holder at a time among processes, handed
on when the holder is killed (`kill -9`: its session ends, the server frees the lock), given up by
`close`, and always held on SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elserve.store import SCALER_LEASE, SqliteRepository, open_lease
from tests.store.postgres_cluster import wait_for

psycopg = pytest.importorskip("psycopg", reason="the `postgres` extra (make test-postgres installs it)")

from elserve.store.lease import AdvisoryLease  # noqa: E402

pytestmark = pytest.mark.postgres

# A process that takes the lease, says so, and holds it until it is killed.
_HOLDER = """
import sys, time
from elserve.store.lease import AdvisoryLease
lease = AdvisoryLease(sys.argv[1], int(sys.argv[2]))
while not lease.held():
    time.sleep(0.05)
print("held", flush=True)
while True:
    time.sleep(1)
"""


def test_sqlite_always_holds(tmp_path: Path) -> None:
    repo = SqliteRepository(tmp_path / "elserve.db")
    try:
        lease = open_lease(repo, SCALER_LEASE)
        assert lease.held() and lease.held()
    finally:
        repo.close()


def test_one_holder_at_a_time_and_close_hands_it_on(postgres_url: str) -> None:
    a, b = AdvisoryLease(postgres_url, SCALER_LEASE), AdvisoryLease(postgres_url, SCALER_LEASE)
    try:
        assert a.held()
        assert not b.held() and a.held() and not b.held()
        a.close()
        assert b.held() and not a.held()
    finally:
        a.close()
        b.close()


def test_a_killed_holder_hands_it_on_within_seconds(postgres_url: str) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, postgres_url, str(SCALER_LEASE)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    waiting = AdvisoryLease(postgres_url, SCALER_LEASE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not waiting.held()
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        holder.wait(timeout=60)
        wait_for(waiting.held, timeout=60)  # a bound against a hang; the takeover itself is a poll away
        print(f"lease taken over {time.monotonic() - killed:.3f} s after the holder's kill -9")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        waiting.close()


def test_a_holder_cut_off_from_the_server_stops_holding(postgres_url: str) -> None:
    """The server ends the holder's session (as when it loses the holder's machine): the holder knows at its
    next check, and another front end takes the lease."""
    a, b = AdvisoryLease(postgres_url, SCALER_LEASE), AdvisoryLease(postgres_url, SCALER_LEASE)
    try:
        assert a.held()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s",
                (SCALER_LEASE & 0xFFFFFFFF,),
            )
        wait_for(lambda: not a.held(), timeout=60)
        assert b.held()
    finally:
        a.close()
        b.close()
