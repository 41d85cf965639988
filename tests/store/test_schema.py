"""Versioned schema migrations on SQLite: a new store, a store from before versions were recorded (a real
file written by the release before them), and a store from a later release.

`legacy/elserve-before-versions.db` was written by `elserve serve` of that release: an endpoint
(`legacy-endpoint`, ELSER falling back to SPLADE-tiny), a role `legacy-role`, a user `legacy-user`
(password `legacy-password`, full name `Legacy User`), an API key (`LEGACY_API_KEY`), and `elastic`
with the tests' password.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from elserve.store import SqliteRepository
from elserve.store.schema import CURRENT_VERSION, StoreSchemaError
from tests.support.server import PASSWORD, Server

LEGACY_STORE = Path(__file__).parent / "legacy" / "elserve-before-versions.db"
LEGACY_API_KEY = "OWs1TGlnb05qZ2NuN1VuLWQ1VnY6bkxxR0xnbF80MXlwc2RiYkJCQnJnUQ=="
LEGACY_KINDS = {"api_key", "deployment", "endpoint", "node", "role", "user"}


def _versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]


def _documents(path: Path) -> list[tuple[str, str, bytes]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT kind, key, doc FROM documents ORDER BY kind, key").fetchall()


def test_a_new_store_records_every_version(tmp_path: Path) -> None:
    path = tmp_path / "elserve.db"
    SqliteRepository(path).close()
    assert _versions(path) == list(range(1, CURRENT_VERSION + 1))
    SqliteRepository(path).close()  # opened again: nothing to apply, nothing recorded twice
    assert _versions(path) == list(range(1, CURRENT_VERSION + 1))


def test_a_store_from_before_versions_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "elserve.db"
    shutil.copy(LEGACY_STORE, path)
    before = _documents(path)
    assert {kind for kind, _, _ in before} == LEGACY_KINDS
    repo = SqliteRepository(path)
    try:
        assert _versions(path) == list(range(1, CURRENT_VERSION + 1))  # version 1 is what it held
        assert _documents(path) == before  # every document as it was, byte for byte
        assert repo.get("user", "legacy-user")["full_name"] == "Legacy User"
        repo.put("role", "new-role", {"cluster": []})  # and it takes writes with the new columns
        assert repo.create("role", "other-role", {"cluster": []})
    finally:
        repo.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT updated_ms FROM documents WHERE key = 'legacy-user'").fetchone() == (0,)
        assert conn.execute("SELECT updated_ms FROM documents WHERE key = 'new-role'").fetchone()[0] > 0


def test_read_only_reads_an_old_store_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "elserve.db"
    shutil.copy(LEGACY_STORE, path)
    repo = SqliteRepository(path, read_only=True)
    try:
        assert [key for key, _ in repo.list("user")] == ["elastic", "legacy-user"]
    finally:
        repo.close()
    assert path.read_bytes() == LEGACY_STORE.read_bytes()  # nothing migrated: it cannot be written


def test_a_store_from_a_later_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "elserve.db"
    SqliteRepository(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (CURRENT_VERSION + 1,))
    with pytest.raises(StoreSchemaError, match=f"schema version {CURRENT_VERSION + 1}, newer than"):
        SqliteRepository(path)


def _wait_fully_allocated(http: httpx.Client, deployment_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = http.get(f"/_ml/trained_models/{deployment_id}/_stats", auth=("elastic", PASSWORD)).json()
        deployment = stats["trained_model_stats"][0].get("deployment_stats", {})
        if deployment.get("allocation_status", {}).get("state") == "fully_allocated":
            return
        time.sleep(0.2)
    raise AssertionError(f"[{deployment_id}] not allocated within {timeout}s")


def test_a_data_dir_from_before_versions_serves_its_state(tmp_path: Path) -> None:
    """The old release's data directory under a server of this one: its users, key and endpoint work."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    shutil.copy(LEGACY_STORE, data / "elserve.db")
    server = Server(data).start()
    try:
        with httpx.Client(base_url=server.url, timeout=300) as http:
            me = http.get("/_security/_authenticate", auth=("legacy-user", "legacy-password")).json()
            assert me["username"] == "legacy-user" and me["roles"] == ["legacy-role"]
            keyed = http.get("/_security/_authenticate", headers={"Authorization": f"ApiKey {LEGACY_API_KEY}"})
            assert keyed.status_code == 200 and keyed.json()["api_key"]["name"] == "legacy-key"
            _wait_fully_allocated(http, "legacy-endpoint")  # restored at start: its model loads first
            endpoints = http.get("/_inference/legacy-endpoint", auth=("elastic", PASSWORD)).json()["endpoints"]
            assert [e["inference_id"] for e in endpoints] == ["legacy-endpoint"]
            inferred = http.post(
                "/_inference/sparse_embedding/legacy-endpoint",
                json={"input": "an old store"},
                auth=("elastic", PASSWORD),
            )
            assert inferred.status_code == 200, inferred.text
            assert inferred.json()["sparse_embedding"][0]["embedding"]
    finally:
        server.stop()
    assert _versions(data / "elserve.db") == list(range(1, CURRENT_VERSION + 1))
