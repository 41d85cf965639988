"""The PostgreSQL store against a real server (tests/store/postgres_cluster.py): the same behaviour as
SQLite's, atomic creates across processes, versioned migrations, and a store that cannot be reached."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from elserve.store import SqliteRepository
from elserve.store.schema import CURRENT_VERSION, POSTGRES, StoreSchemaError
from tests.store.postgres_cluster import PASSWORD
from tests.support.server import free_port

psycopg = pytest.importorskip("psycopg", reason="the `postgres` extra (make test-postgres installs it)")

from elserve.store.postgres import PostgresRepository, StoreUnavailableError, redact  # noqa: E402

pytestmark = pytest.mark.postgres


def _versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]


def test_the_same_answers_as_sqlite(postgres_url: str, tmp_path: Path) -> None:
    docs = {
        "b": {"z": 1, "a": [1, 2, {"nested": None}], "text": "é ✓ \u2028"},
        "A": {"order": "kept", "as": "written"},
        "_x": {},
        "a-1": {"big": 2**53, "float": 0.1},
    }
    sqlite = SqliteRepository(tmp_path / "elserve.db")
    postgres = PostgresRepository(postgres_url)
    try:
        for repo in (sqlite, postgres):
            for key, doc in docs.items():
                assert repo.create("endpoint", key, doc)
            assert not repo.create("endpoint", "b", {"other": True})
            repo.put("endpoint", "A", {"replaced": True, "order": "kept"})
            repo.put("user", "b", {"kind": "separate"})
            assert repo.delete("endpoint", "_x") and not repo.delete("endpoint", "_x")
        for kind in ("endpoint", "user", "role"):
            assert postgres.list(kind) == sqlite.list(kind)
            # Keys come back in the order written, as SQLite keeps them.
            assert [list(doc) for _, doc in postgres.list(kind)] == [list(doc) for _, doc in sqlite.list(kind)]
        assert postgres.get("endpoint", "b") == docs["b"]
        assert postgres.get("endpoint", "missing") is None
    finally:
        sqlite.close()
        postgres.close()


def test_two_front_ends_creating_one_id_at_once_one_wins(postgres_url: str) -> None:
    """Each repository is a front end's pool: of two creates of one id exactly one gets True."""
    fronts = [PostgresRepository(postgres_url), PostgresRepository(postgres_url)]
    try:
        for round_ in range(30):
            barrier = threading.Barrier(2)

            def create(
                repo: PostgresRepository, who: int, key: str = f"id-{round_}", barrier: threading.Barrier = barrier
            ) -> bool:
                barrier.wait()
                return repo.create("endpoint", key, {"by": who})

            with ThreadPoolExecutor(2) as pool:
                results = list(pool.map(create, fronts, (0, 1)))
            assert sorted(results) == [False, True]
            winner = results.index(True)
            assert fronts[1 - winner].get("endpoint", f"id-{round_}") == {"by": winner}
    finally:
        for repo in fronts:
            repo.close()


def test_front_ends_starting_together_migrate_once(postgres_url: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        repos = list(pool.map(lambda _: PostgresRepository(postgres_url), range(4)))
    for repo in repos:
        repo.close()
    assert _versions(postgres_url) == list(range(1, CURRENT_VERSION + 1))


def test_an_older_database_upgrades_in_place(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY)")
        for statement in POSTGRES[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute("""INSERT INTO documents VALUES ('user', 'old', '{"roles": ["r"], "a": 1}')""")
    repo = PostgresRepository(postgres_url)
    try:
        assert _versions(postgres_url) == list(range(1, CURRENT_VERSION + 1))
        assert repo.get("user", "old") == {"roles": ["r"], "a": 1}
        repo.put("user", "new", {})
        with psycopg.connect(postgres_url) as conn:
            rows = dict(conn.execute("SELECT key, updated_ms FROM documents").fetchall())
        assert rows["old"] == 0 and rows["new"] > 0
    finally:
        repo.close()


def test_a_database_from_a_later_release_is_refused(postgres_url: str) -> None:
    PostgresRepository(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s)", (CURRENT_VERSION + 1,))
    with pytest.raises(StoreSchemaError, match="newer than"):
        PostgresRepository(postgres_url)


def test_a_store_that_cannot_be_reached_is_said_without_its_password() -> None:
    url = f"postgresql://elserve:{PASSWORD}@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(StoreUnavailableError) as raised:
        PostgresRepository(url)
    assert "cannot be reached" in str(raised.value)
    assert PASSWORD not in str(raised.value)
    assert PASSWORD not in redact(url) and "127.0.0.1" in redact(url)


def test_a_lost_server_is_503_then_recovers(postgres_cluster, postgres_url: str) -> None:
    """A server that goes away fails calls with `StoreUnavailableError` (503), never hangs; once it is back
    the pool's connections are checked and replaced, and calls succeed again."""
    repo = PostgresRepository(postgres_url)
    try:
        repo.put("role", "r", {"cluster": []})
        postgres_cluster.restart()  # every open connection is cut
        assert repo.get("role", "r") == {"cluster": []}
        postgres_cluster.restart()
        repo.put("role", "after-restart", {})  # a write finds a live connection too
        assert repo.create("role", "created-after-restart", {})
        postgres_cluster.stop_server()
        with pytest.raises(StoreUnavailableError):
            repo.get("role", "r")
        with pytest.raises(StoreUnavailableError):
            repo.put("role", "s", {})
        postgres_cluster.start_server()
        assert repo.get("role", "r") == {"cluster": []}
    finally:
        repo.close()


def test_serve_refuses_a_store_it_cannot_use(postgres_cluster, tmp_path: Path) -> None:
    """`elserve serve --store`: a wrong password exits 75 in one line that names the store without the
    password; a database of a later release exits 78."""
    import subprocess
    import sys

    elserve = Path(sys.executable).with_name("elserve")
    wrong = postgres_cluster.url().replace(PASSWORD, "not-the-password")
    args = [str(elserve), "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "data")]
    run = subprocess.run([*args, "--store", wrong], capture_output=True, text=True, timeout=300)
    assert run.returncode == 75, run.stderr
    assert "password authentication failed" in run.stderr and "not-the-password" not in run.stderr
    assert "Traceback" not in run.stderr
    later = postgres_cluster.new_database()
    PostgresRepository(later).close()
    with psycopg.connect(later, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version VALUES (%s)", (CURRENT_VERSION + 1,))
    run = subprocess.run([*args, "--store", later], capture_output=True, text=True, timeout=300)
    assert run.returncode == 78 and "newer than this elserve's" in run.stderr, run.stderr
