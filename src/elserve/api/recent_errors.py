"""The last answers that went wrong on the server's side, for the console (an elserve extension,
`GET /_elserve/errors`).

Kept: 5xx, and the answers that say the service could not keep up or keep a promise (408 timeout,
409 not allocated, 413 too large, 429 overloaded). A client's own mistakes (400, 401, 403, 404) are
left out: they are the caller's to read, and a stranger's guesses must not push the server's
failures out. The ring is bounded, and each entry holds only the error's type and reason.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from elserve.api.http_middleware import HttpMiddleware

KEPT_STATUSES = frozenset({408, 409, 413, 429})
CAPACITY = 100
# An error body longer than this is cut before it is read: the type and reason come first.
_BODY_BYTES = 4096


@dataclass(frozen=True)
class RecentError:
    time_ms: int
    method: str
    path: str
    status: int
    type: str
    reason: str


def is_kept(status: int) -> bool:
    return status >= 500 or status in KEPT_STATUSES


def _describe(body: bytes) -> tuple[str, str]:
    """The error's type and reason from an Elasticsearch error body (or its short form)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", ""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict):
        return str(error.get("type", "")), str(error.get("reason", ""))
    return "", str(error or "")


class RecentErrors:
    """The last `CAPACITY` kept error answers."""

    def __init__(self) -> None:
        self._entries: deque[RecentError] = deque(maxlen=CAPACITY)

    def add(self, entry: RecentError) -> None:
        self._entries.append(entry)

    def snapshot(self) -> list[dict[str, Any]]:
        """Newest first."""
        return [asdict(e) for e in reversed(self._entries)]


class RecordErrors(HttpMiddleware):
    """An ASGI middleware that adds every kept error answer to `errors`."""

    def __init__(self, app: ASGIApp, errors: RecentErrors) -> None:
        super().__init__(app)
        self.errors = errors

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 0
        body = bytearray()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and is_kept(status):
                if len(body) < _BODY_BYTES:
                    body.extend(message.get("body", b"")[: _BODY_BYTES - len(body)])
                if not message.get("more_body", False):
                    kind, reason = _describe(bytes(body))
                    now = int(time.time() * 1000)
                    self.errors.add(RecentError(now, scope["method"], scope["path"], status, kind, reason))
            await send(message)

        await self.app(scope, receive, watch)
