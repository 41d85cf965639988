"""Issue 24 rows 2, 3 and 12, end to end: the login brake against a guesser with many connections, a
correct login from elsewhere while one hammers, and forwarded headers (trusted only from named proxies).

Each loopback address (127.0.0.x) is its own client to the brake. Nothing here depends on the machine's
speed: the guessing bound counts the answers that told the guesser something (each 401 is one bcrypt
check), against what the brake's spacing allows in the time the attack took, however long that was."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from elasticsearch import Elasticsearch

from tests.support.clients import make_client
from tests.support.server import PASSWORD, Server

FREE = 3  # --login-free-failures
BASE_DELAY_S = 0.5  # the brake's first spacing (throttle.py)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("brake") / "data", args=["--login-free-failures", str(FREE)]).start() as srv:
        yield srv


@pytest.fixture(scope="module")
def es(server: Server) -> Iterator[Elasticsearch]:
    with make_client(server) as client:
        yield client


def _client(server: Server, source: str) -> httpx.Client:
    """A keep-alive connection from loopback address `source`."""
    return httpx.Client(base_url=server.url, transport=httpx.HTTPTransport(local_address=source), timeout=120)


def _login(
    server: Server, source: str, user: str, password: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    with _client(server, source) as client:
        return client.get("/_security/_authenticate", auth=(user, password), headers=headers)


def _shape(r: httpx.Response) -> tuple[int, str, str]:
    """A refusal's status, type and reason with its retry seconds left out (they only say when)."""
    error = r.json()["error"]
    return r.status_code, error["type"], re.sub(r"\d+", "N", error["reason"])


def _audit(server: Server, user: str) -> list[dict[str, object]]:
    return [
        json.loads(line[line.index("{") :])
        for line in server.log().splitlines()
        if '"event.action":"authentication_failed"' in line and f'"user.name":"{user}"' in line
    ]


class Guesser:
    """`connections` threads, each with its own keep-alive connection from `source`, sending wrong
    passwords for `user` until `seconds` have passed (a request already sent is answered first). Each
    guess claims another client in X-Forwarded-For, which no proxy named."""

    def __init__(self, server: Server, source: str, user: str, connections: int = 20, seconds: float = 3.0) -> None:
        self.server, self.source, self.user = server, source, user
        self.connections, self.seconds = connections, seconds
        self.statuses: list[int] = []
        self.refusals: set[tuple[int, str, str]] = set()
        self.braked = threading.Event()  # set at the first 429
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> Guesser:
        self.started = time.monotonic()
        deadline = self.started + self.seconds
        for n in range(self.connections):
            thread = threading.Thread(target=self._run, args=(n, deadline), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, n: int, deadline: float) -> None:
        with _client(self.server, self.source) as client:
            i = 0
            while time.monotonic() < deadline:
                forwarded = {"X-Forwarded-For": f"203.0.113.{(n * 7 + i) % 250 + 1}"}
                r = client.get("/_security/_authenticate", auth=(self.user, f"guess-{n}-{i}"), headers=forwarded)
                i += 1
                with self._lock:
                    self.statuses.append(r.status_code)
                    if r.status_code == 429:
                        self.refusals.add(_shape(r))
                        self.braked.set()

    def join(self) -> float:
        """Wait for every thread; the seconds from the first guess to the last answer."""
        for thread in self._threads:
            thread.join(300)
            assert not thread.is_alive()
        return time.monotonic() - self.started

    def max_checks(self, elapsed: float) -> int:
        """What the brake allows in `elapsed` seconds: the free failures at once, then one check per spacing
        at most (the spacing starts at BASE_DELAY_S and only grows)."""
        return FREE + int(elapsed / BASE_DELAY_S) + 1


@dataclass
class Attack:
    guesser: Guesser
    elapsed: float  # from the first guess to the last answer
    probes: list[tuple[httpx.Response, float]]  # the right password from the guessing address, and its seconds
    elsewhere: list[int]  # the right password from other addresses meanwhile


@pytest.fixture(scope="module")
def attack(es: Elasticsearch, server: Server) -> Attack:
    """A user logged in once (the right password is in the realm cache); then 20 connections from
    127.0.0.1 guess its password. Once they are braked, the right password is tried from their address,
    then from others (each round after a password change, so each is a fresh check, as after a restart)."""
    es.security.put_user(username="br_ann", password="ann-password", roles=[])
    assert _login(server, "127.0.0.2", "br_ann", "ann-password").status_code == 200  # now cached
    guesser = Guesser(server, "127.0.0.1", "br_ann").start()  # the address uvicorn's default believed
    assert guesser.braked.wait(120)  # from here the pair's next turn is more than 10 s away
    probes: list[tuple[httpx.Response, float]] = []
    with _client(server, "127.0.0.1") as probe:
        for _ in range(3):
            sent = time.monotonic()
            r = probe.get("/_security/_authenticate", auth=("br_ann", "ann-password"))
            probes.append((r, time.monotonic() - sent))
            if r.status_code == 200:
                break  # a success clears the pair's failures: later probes say nothing
    elsewhere = []
    for i in range(3):
        es.security.change_password(username="br_ann", password=f"ann-password-{i}")
        elsewhere.append(_login(server, f"127.0.0.{5 + i}", "br_ann", f"ann-password-{i}").status_code)
    return Attack(guesser, guesser.join(), probes, elsewhere)


def test_row2_braked_answers_do_not_depend_on_the_password(attack: Attack, server: Server) -> None:
    """Every guess that told anything was a bcrypt check at the brake's pace, and the right password from
    the guessing address got what a wrong one gets. Before the fix the cache was consulted before the
    brake: the right password was an instant 200 and 998 of 1,000 guesses were free 429s."""
    guesser = attack.guesser
    assert set(guesser.statuses) <= {401, 429}, set(guesser.statuses)
    checks = guesser.statuses.count(401)
    assert FREE <= checks <= guesser.max_checks(attack.elapsed), (checks, attack.elapsed, len(guesser.statuses))
    assert guesser.refusals == {
        (429, "security_exception", "too many failed authentication attempts for user [br_ann]; retry in [Ns]")
    }
    for r, seconds in attack.probes:
        if r.status_code == 429:
            assert _shape(r) in guesser.refusals  # the same answer as a wrong password's
        else:  # admitted in the brake's turn, as a wrong one would have been: never without waiting for it
            assert r.status_code == 200 and seconds >= BASE_DELAY_S, (r.status_code, seconds)
    # The server saw exactly the checks the guesser counted.
    assert len([line for line in _audit(server, "br_ann") if line["status"] == 401]) == checks


def test_row3_a_correct_login_from_elsewhere_is_never_locked_out(attack: Attack, server: Server) -> None:
    """While one address hammers a user, the right password from other addresses is answered 200, never
    429 (before the fix the user's own brake answered them 429), and a wrong one there is one check."""
    assert attack.elsewhere == [200] * 3
    assert _login(server, "127.0.0.11", "br_ann", "not-it").status_code == 401


def test_row12_forwarded_headers_are_not_trusted_by_default(attack: Attack, server: Server) -> None:
    """Without --trusted-proxies a client's X-Forwarded-For changes nothing: rotating it did not escape
    the brake, and the audit log names the socket's address."""
    assert 429 in attack.guesser.statuses
    addresses = {line["origin.address"] for line in _audit(server, "br_ann")}
    assert "127.0.0.1" in addresses and not any(a.startswith("203.0.113.") for a in addresses), addresses


def test_a_clients_first_burst_costs_one_check(es: Elasticsearch, server: Server) -> None:
    """Twenty requests at once with a right password no request has verified yet share one bcrypt check:
    none is slowed or refused by the brake (checks still running count as failures until they end)."""
    es.security.put_user(username="br_cat", password="cat-password", roles=[])
    statuses: list[int] = []

    def one() -> None:
        statuses.append(_login(server, "127.0.0.12", "br_cat", "cat-password").status_code)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert statuses == [200] * 20
    assert _audit(server, "br_cat") == []


def test_row12_trusted_proxies_name_who_may_forward(tmp_path: Path) -> None:
    """With --trusted-proxies 127.0.0.1 the forwarded address is the client's (audit log and brake);
    another loopback address is not a named proxy, and its header is ignored."""
    srv = Server(tmp_path / "data", args=["--login-free-failures", "1", "--trusted-proxies", "127.0.0.1"]).start()
    try:
        proxied = {"X-Forwarded-For": "198.51.100.7"}
        assert _login(srv, "127.0.0.1", "elastic", "wrong-1", headers=proxied).status_code == 401
        assert _login(srv, "127.0.0.2", "elastic", "wrong-2", headers=proxied).status_code == 401
        addresses = [line["origin.address"] for line in _audit(srv, "elastic")]
        assert addresses == ["198.51.100.7", "127.0.0.2"]
        # The brake counts the forwarded client: another one behind the same proxy is not slowed.
        assert (
            _login(srv, "127.0.0.1", "elastic", PASSWORD, headers={"X-Forwarded-For": "198.51.100.8"}).status_code
            == 200
        )
    finally:
        srv.stop()
