"""The `Warning` header of every answer to a request that used something deprecated.

Elasticsearch sends the thread context's deprecation warnings with the response, whatever it
is: a success, a validation error, a 408 (`DefaultRestChannel.sendResponse` copies the
context's response headers). This middleware opens the request's collection
(`endpoints/deprecation.py`) and writes what it holds when the answer starts, so no route has
to remember to, and an error raised after the warning still carries it.
"""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from elserve.api.http_middleware import HttpMiddleware
from elserve.api.rendering import warning_header
from elserve.endpoints import deprecation


class DeprecationWarningHeaders(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        with deprecation.collecting() as warnings:

            async def send_with_warnings(message: Message) -> None:
                if message["type"] == "http.response.start" and warnings:
                    extra = [warning_header(text) for text in warnings]
                    encoded = [(name.lower().encode("latin-1"), value.encode("utf-8")) for name, value in extra]
                    message["headers"] = [*message.get("headers", []), *encoded]
                await send(message)

            await self.app(scope, receive, send_with_warnings)
