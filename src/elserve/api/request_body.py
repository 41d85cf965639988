"""Request bodies as Elasticsearch's Netty pipeline reads them: decompressed, then limited.

`HttpContentDecompressor` sits before the size check, so `http.max_content_length`
bounds the *decompressed* bytes (`Netty4HttpServerTransport`); over it the answer is
413 with an empty body and `Connection: close` (`Netty4HttpContentSizeHandler`).
A declared `Content-Length` over the limit is refused before any work (before
authentication); a chunked or compressed body is counted as it is read, so no more
than the limit is ever held.

After the 413 the rest of the body is read and thrown away before the connection closes
(`_drain`), as nginx's and Apache's lingering close do: a client that writes its whole
body before reading the answer (the official clients do) would otherwise have its
connection reset under it, and see a connection error instead of the 413. The drain has
bounds: the limit again in bytes beyond the limit (a declared length past that is not
drained at all), and `DRAIN_SECONDS` in time; past either, the connection closes at once.
"""

from __future__ import annotations

import asyncio
import time
import zlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from elserve.api.http_middleware import HttpMiddleware
from elserve.errors import ParseException

_GZIP = zlib.MAX_WBITS | 16
_ENCODINGS = {"gzip", "x-gzip", "deflate", "x-deflate"}
# nginx's `lingering_time`: how long, at most, the rest of a refused body is read and dropped.
DRAIN_SECONDS = 30.0


class ContentTooLarge(Exception):
    """The body is over `http.max_content_length`."""


class DecompressionFailed(ParseException):
    """A `Content-Encoding` body that does not decompress (Netty's `DecompressionException`)."""


def too_large_message() -> list[Message]:
    return [
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-length", b"0"), (b"connection", b"close")],
        },
        {"type": "http.response.body", "body": b""},
    ]


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of the request body: until its end, `budget` bytes, or `DRAIN_SECONDS`.

    Called between the answer's head and its end: the server has not finished the response, so
    it still delivers the body (and reads it, with its own flow control), and the head is out.
    """
    deadline = time.monotonic() + DRAIN_SECONDS
    drained = 0
    while drained <= budget:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return  # the client went away
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _expects_continue(scope: Scope) -> bool:
    """`Expect: 100-continue`: such a client sends no body once it has the 413, there is none to drain."""
    return any(name == b"expect" and value.strip().lower() == b"100-continue" for name, value in scope["headers"])


class _Inflater:
    """Incremental gzip/deflate; never produces more than it is allowed to."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._inflater: zlib._Decompress | None = None

    def _make(self, first: bytes) -> zlib._Decompress:
        if "gzip" in self._encoding:
            return zlib.decompressobj(_GZIP)
        # `deflate` is zlib-wrapped by the RFC, raw in practice; Netty accepts both (ZLIB_OR_NONE).
        zlib_header = len(first) >= 2 and first[0] & 0x0F == 8 and ((first[0] << 8) | first[1]) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)

    def feed(self, data: bytes, allowed: int, last: bool) -> bytes:
        """Up to `allowed + 1` decompressed bytes of `data` (one more than allowed: too large)."""
        try:
            if self._inflater is None:
                if not data:
                    return b""
                self._inflater = self._make(data)
            out = self._inflater.decompress(data, allowed + 1)
            if last and len(out) <= allowed and not self._inflater.eof:
                out += self._inflater.flush()
                if not self._inflater.eof:
                    raise DecompressionFailed(f"the {self._encoding} request body ends before its end")
            return out
        except zlib.error as exc:
            raise DecompressionFailed(f"the {self._encoding} request body does not decompress: {exc}") from None


class RequestBodyLimits(HttpMiddleware):
    """ASGI middleware: 413 for a declared length over the limit; decompress and count the rest."""

    def __init__(self, app: ASGIApp, max_content_length: int) -> None:
        super().__init__(app)
        self.max_content_length = max_content_length

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        encoding = ""
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-encoding":
                encoding = value.decode("latin-1").strip().lower()
            elif name == b"content-length" and value.strip().isdigit():
                declared = int(value)
        compressed = encoding in _ENCODINGS
        limit = self.max_content_length
        drains = not _expects_continue(scope)
        if not compressed and declared is not None and declared > limit:
            start, end = too_large_message()
            await send(start)
            if drains and declared - limit <= limit:
                await _drain(receive, declared)
            await send(end)
            return
        inflater = _Inflater(encoding) if compressed else None
        received = 0
        raw_received = 0
        body_ended = False
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, raw_received, body_ended, too_large
            message = await receive()
            if message["type"] != "http.request":
                return message
            body = message.get("body", b"")
            raw_received += len(body)
            body_ended = not message.get("more_body", False)
            if inflater is not None:
                body = inflater.feed(body, limit - received, last=body_ended)
            received += len(body)
            if received > limit:
                too_large = True
                raise ContentTooLarge()
            return {**message, "body": body} if inflater is not None else message

        async def send_then_drain(message: Message) -> None:
            # The 413 of a body found too large while reading it (api/errors.py): its head goes out,
            # then the rest of the body is dropped, then the (empty) end of the answer.
            nonlocal too_large
            if too_large and message["type"] == "http.response.body":
                too_large = False
                if drains and not body_ended:
                    await _drain(receive, max(0, 2 * limit - raw_received))
            await send(message)

        await self.app(scope, limited_receive, send_then_drain)
