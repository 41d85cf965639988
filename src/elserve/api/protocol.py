"""The HTTP/1.1 connection: uvicorn's httptools protocol with Elasticsearch's limits on the request head.

Elasticsearch's Netty decoder refuses a request line over `http.max_initial_line_length`
(4kb) and a header block over `http.max_header_size` (16kb) with a 400 whose body is
the decoder's exception (`too_long_http_line_exception`, `too_long_http_header_exception`);
`RestController.dispatchBadRequest`. The bytes are counted here, as they arrive and
before the parser sees them, so a 100 MB header costs 16 KB of work and no one else waits.

Also here, because only the connection sees them:
- a read timeout (`--http-read-timeout`): a new connection must send its request head within it,
  the head must arrive within it from its first byte, and a body may not stall for longer (a slow
  or silent client is cut off, not waited for);
- a cap on open connections (`--http-max-connections`): one over it is closed at once and the
  refusal logged (Elasticsearch's Netty transport bounds its open channels the same way: a file
  descriptor per idle socket is a resource a client must not be able to take all of);
- HTTP/1.0 keep-alive: a 1.0 request with `Connection: keep-alive` keeps its connection, and the
  answer says so (RFC 9112 section 9.3; uvicorn closes every 1.0 connection);
- the parser's own errors answered with an Elasticsearch body, not uvicorn's plain text;
- raw non-ASCII bytes in the request target percent-encoded before parsing (llhttp refuses
  them; Elasticsearch routes them).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import httptools
import orjson
from starlette.types import Message
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from elserve.api.arrival import ARRIVAL
from elserve.settings import HttpLimits

log = logging.getLogger("elserve.http")

# Refused connections are logged at most this often (with how many were refused since): a flood of
# connections must not become a flood of log lines.
REFUSAL_LOG_INTERVAL_S = 10.0

_NON_ASCII = re.compile(rb"[\x80-\xff]")


def bad_request_body(error_type: str, reason: str) -> bytes:
    cause = {"type": error_type, "reason": reason}
    return orjson.dumps({"error": {"root_cause": [cause], **cause}, "status": 400})


def _percent_encode(match: re.Match[bytes]) -> bytes:
    return b"%%%02X" % match.group()[0]


class _HeadTooLong(Exception):
    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.error_type = error_type
        self.reason = reason


def _keep_http10_alive(cycle: RequestResponseCycle, shutting_down: Callable[[], bool]) -> None:
    """An HTTP/1.0 request that asked for keep-alive: the connection stays open after an answer of known
    length, which says `Connection: keep-alive` (a 1.0 client assumes close otherwise). An answer without
    a length, or one that closes, ends the connection as before."""
    send = cycle.send

    async def send_keep_alive(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            names = {name.lower() for name, _ in headers}
            if b"connection" not in names and b"content-length" in names and not shutting_down():
                cycle.keep_alive = True
                message = {**message, "headers": [*headers, (b"connection", b"keep-alive")]}
        await send(message)  # type: ignore[arg-type]  # uvicorn types its send with its own message union

    cycle.send = send_keep_alive  # type: ignore[method-assign, assignment]  # wraps uvicorn's method on purpose


def protocol_class(limits: HttpLimits) -> type[HttpToolsProtocol]:
    """The protocol uvicorn instantiates per connection, bound to these limits."""

    class LimitedHttpToolsProtocol(_LimitedProtocol):
        pass

    LimitedHttpToolsProtocol.limits = limits
    return LimitedHttpToolsProtocol


class _Refusals:
    """Connections refused over the cap since the last log line (one counter for the server)."""

    count = 0
    logged_at = float("-inf")

    @classmethod
    def note(cls, client: object, open_connections: int, cap: int) -> None:
        cls.count += 1
        now = time.monotonic()
        if now - cls.logged_at >= REFUSAL_LOG_INTERVAL_S:
            log.warning(
                "refused %d connection(s) (the last from %s): %d connections are open, the limit "
                "(--http-max-connections) is %d",
                cls.count,
                client,
                open_connections,
                cap,
            )
            cls.count = 0
            cls.logged_at = now


class _LimitedProtocol(HttpToolsProtocol):
    limits: HttpLimits = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused = False
        self._shutting_down = False
        self._in_head = True  # between requests, or inside a request line and headers
        self._line_bytes = 0  # of the request line, while it is not complete
        self._line_done = False
        self._header_bytes = 0
        self._tail = b""  # the last bytes of the head seen, to find CRLF CRLF across reads
        self._read_timer: asyncio.TimerHandle | None = None

    # -- the read timeout ------------------------------------------------------------------

    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(self.limits.read_timeout_s, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if not self.transport.is_closing():
            log.debug("closing a connection from %s: nothing read for %ss", self.client, self.limits.read_timeout_s)
            self.transport.close()

    # -- the connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.transport = transport
            _Refusals.note(transport.get_extra_info("peername"), len(self.connections), self.limits.max_connections)
            transport.abort()  # nothing read, nothing to answer: the descriptor is freed at once
            return
        super().connection_made(transport)
        self._arm_read_timer()  # a connection that never sends a byte is closed after the read timeout

    def shutdown(self) -> None:
        self._shutting_down = True  # an answer still to come closes its connection, whatever it asked
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._cancel_read_timer()
        super().connection_lost(exc)

    # -- the request head ------------------------------------------------------------------

    def _count_head(self, data: bytes) -> bytes:
        """Count the head's bytes in `data`; the data to parse (request target made ASCII)."""
        if not self._line_done:
            end = data.find(b"\n")
            line = data if end < 0 else data[: end + 1]
            self._line_bytes += len(line)
            if self._line_bytes > self.limits.max_initial_line_length + 2:
                raise _HeadTooLong(
                    "too_long_http_line_exception",
                    f"An HTTP line is larger than {self.limits.max_initial_line_length} bytes.",
                )
            if _NON_ASCII.search(line):
                data = _NON_ASCII.sub(_percent_encode, line) + data[len(line) :]
                end = data.find(b"\n")
            if end < 0:
                return data
            self._line_done = True
            self._tail = b"\n"
            rest_start = end + 1
        else:
            rest_start = 0
        rest = data[rest_start:]
        window = self._tail + rest
        head_end = window.find(b"\r\n\r\n") if b"\r\n\r\n" in window else window.find(b"\n\n")
        counted = len(rest) if head_end < 0 else max(0, head_end - len(self._tail))
        self._header_bytes += counted
        if self._header_bytes > self.limits.max_header_size:
            raise _HeadTooLong(
                "too_long_http_header_exception",
                f"HTTP header is larger than {self.limits.max_header_size} bytes.",
            )
        if head_end >= 0:
            self._in_head = False
        else:
            self._tail = window[-3:]
        return data

    def _start_head(self) -> None:
        self._in_head = True
        self._line_done = False
        self._line_bytes = 0
        self._header_bytes = 0
        self._tail = b""

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            if self._read_timer is None:
                self._arm_read_timer()  # counted from the request's first byte
            try:
                data = self._count_head(data)
            except _HeadTooLong as exc:
                self._unset_keepalive_if_required()
                self._cancel_read_timer()
                self._send_bad_request(exc.error_type, exc.reason)
                return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            self._cancel_read_timer()
            self._send_bad_request("illegal_argument_exception", f"invalid HTTP request: {exc}")

    def _send_bad_request(self, error_type: str, reason: str) -> None:
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
            return
        body = bad_request_body(error_type, reason)
        head = [
            STATUS_LINE[400],
            b"content-type: application/json\r\n",
            b"x-elastic-product: Elasticsearch\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[ARRIVAL] = time.monotonic()  # type: ignore[literal-required]  # elserve's key in the ASGI scope

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._arm_read_timer()  # from here on, a body may not stall for longer than the timeout
        super().on_headers_complete()
        if self.scope.get("http_version") == "1.0" and self.parser.should_keep_alive() and self.cycle is not None:
            _keep_http10_alive(self.cycle, lambda: self._shutting_down)

    def on_body(self, body: bytes) -> None:
        self._arm_read_timer()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel_read_timer()
        self._start_head()
        super().on_message_complete()
