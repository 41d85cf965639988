"""Operations end to end, on one TLS server with the default login brake's shape (2 free failures here):
HTTPS with the official client, `elserve users reset-password` on a running server, the brake."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from elasticsearch import Elasticsearch

from tests.support.clients import make_client
from tests.support.server import PASSWORD, Server


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    certfile, keyfile = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(keyfile), "-out", str(certfile)],
        check=True, capture_output=True,
    )  # fmt: skip
    return certfile, keyfile


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, cert: tuple[Path, Path]) -> Iterator[Server]:
    args = ["--ssl-certfile", str(cert[0]), "--ssl-keyfile", str(cert[1]), "--login-free-failures", "2"]
    with Server(tmp_path_factory.mktemp("ops") / "data", args=args).start() as srv:
        yield srv


@pytest.fixture(scope="module")
def es(server: Server, cert: tuple[Path, Path]) -> Iterator[Elasticsearch]:
    client = make_client(server, ca_certs=str(cert[0]), request_timeout=60)
    yield client
    client.close()


def _get(
    server: Server, cert: tuple[Path, Path], user: str, password: str, source: str = "127.0.0.1"
) -> httpx.Response:
    """One request from a loopback `source` address (each is its own address to the login brake)."""
    transport = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=str(cert[0])), local_address=source)
    with httpx.Client(transport=transport, timeout=60) as client:
        return client.get(server.url + "/_security/_authenticate", auth=(user, password))


def test_https_with_the_official_client(es: Elasticsearch, server: Server) -> None:
    assert server.url.startswith("https://")
    assert es.security.authenticate()["username"] == "elastic"
    with pytest.raises(httpx.TransportError):  # plain HTTP is not answered on the TLS port
        httpx.get(server.url.replace("https://", "http://"), timeout=5)


def test_reset_password_on_a_running_server(es: Elasticsearch, server: Server, cert: tuple[Path, Path]) -> None:
    es.security.put_user(username="ops_ann", password="ann-password", roles=[])
    assert _get(server, cert, "ops_ann", "ann-password").status_code == 200  # now remembered by the server
    out = subprocess.run(
        [str(Path(sys.executable).with_name("elserve")), "users", "reset-password", "ops_ann",
         "--data-dir", str(server.data_dir)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert "Password for the [ops_ann] user successfully reset." in out
    new = out.rsplit("New value: ", 1)[1].strip()
    assert _get(server, cert, "ops_ann", new).status_code == 200
    assert _get(server, cert, "ops_ann", "ann-password").status_code == 401


def test_failed_logins_are_slowed_but_the_right_password_gets_in(
    es: Elasticsearch, server: Server, cert: tuple[Path, Path]
) -> None:
    es.security.put_user(username="ops_bob", password="bob-password", roles=[])
    assert _get(server, cert, "ops_bob", "guess-0", "127.0.0.2").status_code == 401
    # Past the two free failures each check of this user from this address waits first (0.5 s, then
    # doubling). Lower bounds only, each timed from before the failure it is spaced from was sent: the server
    # spaces a check from that failure, which comes before its answer reaches us by however long the way
    # back took.
    before_second_failure = time.monotonic()
    assert _get(server, cert, "ops_bob", "guess-1", "127.0.0.2").status_code == 401
    before_third_failure = time.monotonic()
    assert _get(server, cert, "ops_bob", "guess-2", "127.0.0.2").status_code == 401
    assert time.monotonic() - before_second_failure >= 0.5
    # The same address with the right password: slowed as a wrong one, then in (and its failures cleared).
    assert _get(server, cert, "ops_bob", "bob-password", "127.0.0.2").status_code == 200
    assert time.monotonic() - before_third_failure >= 1.0
    # Another address is not slowed by any of this, and the audit log saw each failure.
    assert _get(server, cert, "ops_bob", "bob-password", "127.0.0.3").status_code == 200
    assert _get(server, cert, "elastic", PASSWORD, "127.0.0.4").status_code == 200
    assert server.log().count('"event.action":"authentication_failed","user.name":"ops_bob"') == 3
