"""Request bodies as Elasticsearch's Netty pipeline reads them: decompressed, then limited.

`HttpContentDecompressor` sits before the size check, so `http.max_content_length`
bounds the *decompressed* bytes (`Netty4HttpServerTransport`); over it the answer is
413 with an empty body and `Connection: close` (`Netty4HttpContentSizeHandler`).
A declared `Content-Length` over the limit is refused before any work (before
authentication); a chunked or compressed body is counted as it is read, so no more
than the limit is ever held.
"""

from __future__ import annotations

import zlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from elserve.errors import ParseException

_GZIP = zlib.MAX_WBITS | 16
_ENCODINGS = {"gzip", "x-gzip", "deflate", "x-deflate"}


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


class _Inflater:
    """Incremental gzip/deflate; never produces more than it is allowed to."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._inflater: zlib._Decompress | None = None  # type: ignore[name-defined]

    def _make(self, first: bytes) -> zlib._Decompress:  # type: ignore[name-defined]
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


class RequestBodyLimits:
    """ASGI middleware: 413 for a declared length over the limit; decompress and count the rest."""

    def __init__(self, app: ASGIApp, max_content_length: int) -> None:
        self.app = app
        self.max_content_length = max_content_length

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = ""
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-encoding":
                encoding = value.decode("latin-1").strip().lower()
            elif name == b"content-length" and value.strip().isdigit():
                declared = int(value)
        compressed = encoding in _ENCODINGS
        if not compressed and declared is not None and declared > self.max_content_length:
            for message in too_large_message():
                await send(message)
            return
        inflater = _Inflater(encoding) if compressed else None
        limit = self.max_content_length
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] != "http.request":
                return message
            body = message.get("body", b"")
            if inflater is not None:
                body = inflater.feed(body, limit - received, last=not message.get("more_body", False))
            received += len(body)
            if received > limit:
                raise ContentTooLarge()
            return {**message, "body": body} if inflater is not None else message

        await self.app(scope, limited_receive, send)
