"""A 413 a client can read: the rest of a refused body is read and dropped before the connection closes.

A client that writes its whole body before reading the answer (the official client does) must get
the 413, not a reset connection (issue 25, part 7).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from elasticsearch import ApiError, Elasticsearch

from tests.support.clients import make_client
from tests.support.raw_http import AUTH, read_response
from tests.support.server import Server

LIMIT = 1 << 20  # --http-max-content-length 1mb


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(
        tmp_path_factory.mktemp("elserve-drain") / "data", args=["--http-max-content-length", "1mb"]
    ).start() as srv:
        yield srv


def _post_head(length: int | None, extra: bytes = b"") -> bytes:
    framing = b"Transfer-Encoding: chunked\r\n" if length is None else b"Content-Length: %d\r\n" % length
    return (
        b"POST /_inference/sparse_embedding/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: " + AUTH.encode() + b"\r\n" + framing + extra + b"\r\n"
    )


def _send_all_then_read(server: Server, request: bytes, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """As the official clients do: write everything, then read the answer (a reset would raise here)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
        sock.sendall(request)
        view = memoryview(body)
        for start in range(0, len(body), 1 << 16):
            sock.sendall(view[start : start + (1 << 16)])
        answer = read_response(sock)
        assert sock.recv(1) == b""  # then the server closes, having read everything: a FIN, not a reset
        return answer


def test_the_official_client_gets_an_api_error_413(small_server: Server) -> None:
    es = make_client(small_server)
    with pytest.raises(ApiError) as caught:
        es.inference.inference(inference_id="x", task_type="sparse_embedding", input=["a" * (3 * LIMIT // 2)])
    assert caught.value.meta.status == 413
    assert es.info()["tagline"] == "You Know, for Search"  # the client's next request is served


def test_the_official_client_gets_413_for_110_mb_under_the_default_limit(es: Elasticsearch) -> None:
    # The case the issue found: 110 MB against the default 100mb, the whole body written first.
    with pytest.raises(ApiError) as caught:
        es.inference.inference(inference_id="x", task_type="sparse_embedding", input=["a" * (110 << 20)])
    assert caught.value.meta.status == 413


def test_raw_socket_declared_length_body_written_whole(small_server: Server) -> None:
    body = b'{"input": "' + b"a" * (3 * LIMIT // 2) + b'"}'
    status, headers, content = _send_all_then_read(small_server, _post_head(len(body)), body)
    assert status == 413
    assert content == b""
    assert headers["connection"] == "close"
    assert headers["x-elastic-product"] == "Elasticsearch"


def test_raw_socket_chunked_body_written_whole(small_server: Server) -> None:
    chunk = b"a" * 256_000
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"  # 2 MB
    status, headers, _ = _send_all_then_read(small_server, _post_head(None), body)
    assert status == 413
    assert headers["connection"] == "close"


def test_the_413_comes_before_the_body_is_sent(small_server: Server) -> None:
    # Declared, nothing sent yet: the answer does not wait for the body.
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=60) as sock:
        sock.sendall(_post_head(2 * LIMIT))
        status, _, _ = read_response(sock)
    assert status == 413


def test_expect_100_continue_is_answered_at_once_and_closed(small_server: Server) -> None:
    # Such a client sends no body after a 413: nothing to drain, the connection closes at once.
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=60) as sock:
        sock.sendall(_post_head(2 * LIMIT, b"Expect: 100-continue\r\n"))
        status, _, _ = read_response(sock)
        started = time.monotonic()
        assert sock.recv(1) == b""
    assert status == 413
    assert time.monotonic() - started < 30  # closed, not drained until the drain's bound


def test_a_body_past_twice_the_limit_is_not_drained(small_server: Server) -> None:
    # Declared far beyond the drain bound: answered and closed at once, without reading it.
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=60) as sock:
        sock.sendall(_post_head(50 * LIMIT))
        status, _, _ = read_response(sock)
        assert sock.recv(1) == b""
    assert status == 413
