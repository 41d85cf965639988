"""The data directory under trouble (issue 15, rows 10-12): owner-only files, unwritable, unreadable records."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from elserve.endpoints.put_request import parse_put_request
from elserve.security.users import UserStore
from elserve.store import SqliteRepository
from tests.support.elser import elser_config
from tests.support.server import PASSWORD, Server, free_port

ELSER = elser_config()


def _store_with_elastic(data: Path) -> SqliteRepository:
    """A data directory as a first start leaves it: a store holding the `elastic` user."""
    repo = SqliteRepository(data / "elserve.db")
    UserStore(repo).bootstrap_elastic(PASSWORD)
    return repo


def _client(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120)


# -- row 11: owner-only ---------------------------------------------------------------------------


def test_row11_data_dir_is_readable_by_the_owner_only(server: Server, elser_endpoint: str) -> None:
    # By now the session server has stored users and an endpoint, and downloaded a model.
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((server.data_dir / "elserve.db").stat().st_mode) == 0o600
    loose = [
        f"{path.relative_to(server.data_dir)} {oct(stat.S_IMODE(path.stat().st_mode))}"
        for path in [server.data_dir, *server.data_dir.rglob("*")]
        if not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) & 0o077
    ]
    assert loose == []


def test_row11_an_existing_world_readable_store_is_restricted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    SqliteRepository(data / "elserve.db").close()
    (data / "elserve.db").chmod(0o644)
    SqliteRepository(data / "elserve.db").close()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "elserve.db").stat().st_mode) == 0o600


# -- row 10: a data directory that cannot be written ---------------------------------------------------


def test_row10_no_writable_dir_and_no_state_exits_with_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    elserve = Path(sys.executable).with_name("elserve")
    env = dict(os.environ) | {"ELASTIC_PASSWORD": PASSWORD}
    done = subprocess.run(
        [str(elserve), "serve", "--port", str(free_port()), "--data-dir", str(blocker / "data")],
        capture_output=True,
        text=True,
        env=env,
        timeout=540,  # only against a hang: the CLI imports PyTorch first, which takes what it takes
    )
    assert done.returncode == 78
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "ERROR" in line]
    assert len(lines) == 1
    assert f"the data directory [{blocker / 'data'}] cannot be written" in lines[0]


def _chattr(flag: str, path: Path) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.fixture
def immutable_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A data directory with a store in it, then made immutable (as in the issue's reproducer)."""
    data = tmp_path / "data"
    _store_with_elastic(data).close()
    if not _chattr("+i", data):
        pytest.skip("chattr +i is not permitted here")
    try:
        yield data
    finally:
        _chattr("-i", data)


def test_row10_unwritable_data_dir_serves_read_only(immutable_data_dir: Path) -> None:
    server = Server(immutable_data_dir, port=free_port()).start()
    try:
        with _client(server) as http:
            assert http.get("/").status_code == 200  # the stored `elastic` user still logs in
            assert http.get("/_inference").status_code == 200
            r = http.put("/_inference/sparse_embedding/ro-endpoint", json=ELSER)
            assert r.status_code == 503
            error = r.json()["error"]
            assert error["type"] == "status_exception"
            assert "cannot be written" in error["reason"]
        log = server.log()
        assert "Traceback" not in log
        lines = [line for line in log.splitlines() if "ERROR" in line]
        assert len(lines) == 1 and "serving its state read-only" in lines[0]
    finally:
        server.stop()


# -- row 12: a stored deployment that cannot start ------------------------------------------------


def test_row12_an_unreadable_deployment_record_does_not_stop_the_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    repo = _store_with_elastic(data)
    endpoint = parse_put_request("broken", "sparse_embedding", ELSER).endpoint
    assert repo.create("endpoint", "broken", endpoint.to_persisted())
    # A record this version cannot read (a field it does not know, one it needs missing).
    repo.put("deployment", "broken", {"deployment_id": "broken", "model_id": ".elser_model_2", "allocations": 1000})
    repo.close()

    server = Server(data, port=free_port()).start()
    try:
        with _client(server) as http:
            stats = http.get("/_ml/trained_models/.elser_model_2/_stats").json()["trained_model_stats"]
            deployment = next(
                s["deployment_stats"] for s in stats if s.get("deployment_stats", {}).get("deployment_id") == "broken"
            )
            assert deployment["state"] == "failed"
            assert "its stored record cannot be read" in deployment["reason"]
            r = http.post("/_inference/sparse_embedding/broken", json={"input": "hello"})
            assert r.status_code == 409  # an Elasticsearch answer, not a 500
            assert http.delete("/_inference/broken").status_code == 200  # the user can remove it
            assert http.get("/_inference/broken").status_code == 404
        errors = [line for line in server.log().splitlines() if "ERROR" in line]
        assert len(errors) == 1 and "deployment [broken] failed" in errors[0]
        assert "Traceback" not in server.log()
    finally:
        server.stop()
    repo = SqliteRepository(data / "elserve.db")
    assert repo.list("deployment") == [] and repo.list("endpoint") == []  # gone for the next start too
    repo.close()
