"""Raw HTTP over a socket, where a client library would refuse to send the request or would hide how
the server answers it (its framing, its closing of the connection)."""

from __future__ import annotations

import base64
import contextlib
import socket

import orjson

from tests.support.server import PASSWORD, Server

AUTH = "Basic " + base64.b64encode(f"elastic:{PASSWORD}".encode()).decode()


def connect(server: Server, timeout: float = 60.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response (Content-Length framed), or status 0 when the server closed without one."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0, {}, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def send_raw(server: Server, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered and closed before reading it all
            sock.sendall(request)
        return read_response(sock)


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server closes the connection (reads until EOF; the socket's timeout bounds the wait)."""
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def es_error(body: bytes) -> dict:
    """A raw error answer's body: exactly `error` and `status`."""
    parsed = orjson.loads(body)
    assert set(parsed) == {"error", "status"}
    return parsed
