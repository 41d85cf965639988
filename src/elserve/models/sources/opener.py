"""Opening a repository URL with urllib, as a hostile repository cannot abuse it.

- A deadline for the whole fetch: a socket timeout bounds each read, not a server that sends one
  byte every few seconds (the headers included). A `Deadline` shuts the connection's socket down
  when its time is up, wherever urllib is blocked on it; the read then fails and says why.
- Redirects stay on the repository's scheme, host and port. A redirect elsewhere (another
  host, or the server itself on its own loopback address) is refused, not followed: a model
  repository has no reason to send its client to another host, and following one would let it
  make elserve fetch from anywhere it can reach.

urllib's default handlers stay otherwise (the proxy variables, `file://`).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
import urllib.request
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

from elserve.models.sources import ModelDownloadError


class Deadline:
    """An instant by which a fetch must be done; `watch(sock)` shuts the socket down at that instant."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        timer = threading.Timer(self.remaining(), _shut, (sock,))
        timer.daemon = True
        with self._lock:
            self._timers.append(timer)
        timer.start()

    def cancel(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)  # a blocked recv returns at once; the owner closes the socket


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        target = urljoin(req.full_url, newurl)
        if _origin(target) != _origin(req.full_url):
            raise ModelDownloadError(
                f"[{req.full_url}] redirects to [{target}], another host: a model repository's redirects are "
                "followed only on its own host",
                status=400,
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _watched(base: type[http.client.HTTPConnection], deadline: Deadline) -> type[http.client.HTTPConnection]:
    class Watched(base):  # type: ignore[valid-type, misc]  # a base class held in a variable
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    return Watched


class _HttpHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._connection = _watched(http.client.HTTPConnection, deadline)

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(self._connection, req)


class _HttpsHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._connection = _watched(http.client.HTTPSConnection, deadline)

    def https_open(self, req: urllib.request.Request) -> Any:
        options: dict[str, Any] = {"context": getattr(self, "_context", None)}
        if hasattr(self, "_check_hostname"):  # Python < 3.12
            options["check_hostname"] = self._check_hostname
        return self.do_open(self._connection, req, **options)


def build_opener(deadline: Deadline) -> urllib.request.OpenerDirector:
    """An opener per fetch: its ProxyHandler reads the proxy variables now, its sockets obey `deadline`,
    and it follows redirects only on the same host."""
    return urllib.request.build_opener(_HttpHandler(deadline), _HttpsHandler(deadline), _SameOriginRedirects())


__all__ = ["Deadline", "build_opener"]
