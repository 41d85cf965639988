"""Issue 24 rows 4, 11 and 13 (reset-password), end to end with real server processes and restarts:
ELASTIC_PASSWORD as a bootstrap password, passwords over bcrypt's 72 bytes, and `elserve users
reset-password` on a disabled user."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.support.server import Server

IGNORED = "ELASTIC_PASSWORD is ignored"


def _status(server: Server, user: str, password: str) -> int:
    return httpx.get(server.url + "/_security/_authenticate", auth=(user, password), timeout=60).status_code


def _as(server: Server, user: str, password: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, auth=(user, password), timeout=60)


def _reset_password(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    elserve = Path(sys.executable).with_name("elserve")
    return subprocess.run(
        [str(elserve), "users", "reset-password", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip


def _new_value(out: str) -> str:
    return out.rsplit("New value: ", 1)[1].strip()


def _elastic_enabled(server: Server, admin: tuple[str, str]) -> bool:
    with _as(server, *admin) as client:
        return client.get("/_security/user/elastic").json()["elastic"]["enabled"]


ADMIN = ("bs_admin", "admin-password")


def test_row4_a_password_set_through_the_api_outlives_elastic_password(tmp_path: Path) -> None:
    """Before the fix a restart with ELASTIC_PASSWORD set brought the old password back, refused the
    rotated one and enabled a disabled `elastic`, silently."""
    data = tmp_path / "data"
    first = Server(data, password="bootstrap-pass-1").start()
    try:
        with _as(first, "elastic", "bootstrap-pass-1") as client:
            assert (
                client.put(
                    f"/_security/user/{ADMIN[0]}", json={"password": ADMIN[1], "roles": ["superuser"]}
                ).status_code
                == 200
            )
            assert (
                client.post("/_security/user/elastic/_password", json={"password": "rotated-pass-2"}).status_code == 200
            )
    finally:
        first.stop()

    second = Server(data, password="bootstrap-pass-1").start()
    try:
        assert _status(second, "elastic", "rotated-pass-2") == 200
        assert _status(second, "elastic", "bootstrap-pass-1") == 401
        assert second.log().count(IGNORED) == 1
        with _as(second, *ADMIN) as admin:
            assert admin.post("/_security/user/elastic/_disable").status_code == 200
    finally:
        second.stop()

    third = Server(data, password="bootstrap-pass-1").start()
    try:
        assert not _elastic_enabled(third, ADMIN)  # a restart does not enable it again
        assert _status(third, "elastic", "rotated-pass-2") == 401
        assert third.log().count(IGNORED) == 1

        # Row 13: reset-password on the disabled user (the server running) says so; --enable enables it.
        kept = _reset_password(data)
        assert "Password for the [elastic] user successfully reset." in kept.stdout
        assert "the [elastic] user is disabled" in kept.stderr and "--enable" in kept.stderr
        assert _status(third, "elastic", _new_value(kept.stdout)) == 401
        assert not _elastic_enabled(third, ADMIN)

        enabled = _reset_password(data, "-u", "elastic", "--enable")
        assert "The [elastic] user was disabled and is now enabled." in enabled.stdout
        assert enabled.stderr == ""
        assert _status(third, "elastic", _new_value(enabled.stdout)) == 200
        assert _status(third, "elastic", "bootstrap-pass-1") == 401
    finally:
        third.stop()


def test_row4_elastic_password_applies_while_it_is_the_bootstrap_password(tmp_path: Path) -> None:
    """Until a password is set through the API, a changed ELASTIC_PASSWORD is the password at the next
    start (nothing logged), and whether `elastic` is enabled stays as it was."""
    data = tmp_path / "data"
    first = Server(data, password="bootstrap-pass-1").start()
    try:
        with _as(first, "elastic", "bootstrap-pass-1") as client:
            assert (
                client.put(
                    f"/_security/user/{ADMIN[0]}", json={"password": ADMIN[1], "roles": ["superuser"]}
                ).status_code
                == 200
            )
        with _as(first, *ADMIN) as admin:
            assert admin.post("/_security/user/elastic/_disable").status_code == 200
    finally:
        first.stop()

    second = Server(data, password="bootstrap-pass-2").start()
    try:
        assert not _elastic_enabled(second, ADMIN)
        with _as(second, *ADMIN) as admin:
            assert admin.post("/_security/user/elastic/_enable").status_code == 200
        assert _status(second, "elastic", "bootstrap-pass-2") == 200
        assert _status(second, "elastic", "bootstrap-pass-1") == 401
        assert IGNORED not in second.log()
    finally:
        second.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("passwords") / "data", args=["--login-free-failures", "100000"]).start() as srv:
        yield srv


def test_row11_passwords_over_72_bytes_are_accepted_as_elasticsearch_does(server: Server) -> None:
    """Elasticsearch accepts any length and bcrypt keys with the first 72 bytes (BCrypt.java); before
    the fix elserve answered 500 ValueError."""
    long_ascii = "p" * 60 + "-and-then-some-more-text"  # 84 bytes
    long_utf8 = "é" * 50  # 100 bytes of UTF-8, 50 characters
    with _as(server, "elastic", server.password or "") as client:
        r = client.put("/_security/user/lp_ann", json={"password": long_ascii, "roles": []})
        assert r.status_code == 200, r.text
        assert _status(server, "lp_ann", long_ascii) == 200
        assert _status(server, "lp_ann", long_ascii[:72] + "-another-tail") == 200  # bytes past 72 do not count
        assert _status(server, "lp_ann", long_ascii[:71]) == 401

        r = client.post("/_security/user/lp_ann/_password", json={"password": long_utf8})
        assert r.status_code == 200, r.text
        assert _status(server, "lp_ann", long_utf8) == 200
        assert _status(server, "lp_ann", long_ascii) == 401

        # A hash Elasticsearch made for a long password ($2a$, the first 72 bytes) is accepted and verifies.
        es_hash = bcrypt.hashpw(long_ascii.encode()[:72], bcrypt.gensalt(10, prefix=b"2a")).decode()
        r = client.put("/_security/user/lp_bob", json={"password_hash": es_hash, "roles": []})
        assert r.status_code == 200, r.text
        assert _status(server, "lp_bob", long_ascii) == 200

    assert _status(server, "elastic", "x" * 5000) == 401  # a long wrong password is a 401, not a 500
