"""One place that turns exceptions into Elasticsearch's error answers."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from elserve.api.rendering import render
from elserve.api.request_body import ContentTooLarge
from elserve.api.rest_error import RestError
from elserve.errors import ElasticsearchError, StatusException
from elserve.store import StoreWriteError

log = logging.getLogger("elserve.api")


def error_body(error: ElasticsearchError, trace: bool) -> dict:
    cause = error.to_dict()
    root = {k: v for k, v in cause.items() if k != "caused_by"}
    if trace:
        cause["stack_trace"] = "".join(traceback.format_exception(error))
    return {"error": {"root_cause": [root], **cause}, "status": error.status}


def _error_trace(request: Request) -> bool:
    return request.query_params.get("error_trace", "false") != "false"


async def on_elasticsearch_error(request: Request, exc: ElasticsearchError) -> Response:
    headers = [(k, v) for k, values in exc.headers.items() for v in values]
    return render(request, error_body(exc, _error_trace(request)), exc.status, headers)


async def on_rest_error(request: Request, exc: RestError) -> Response:
    return render(request, {"error": exc.message, "status": exc.status}, exc.status, exc.headers)


_METHODS = ("DELETE", "GET", "HEAD", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """The methods some route fully matches this path with (asked of the routes, however nested)."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.router.routes
        )
    ]


async def on_http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's routing misses, in Elasticsearch's words."""
    uri, method = request.url.path, request.method
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        return await on_rest_error(
            request,
            RestError(
                f"Incorrect HTTP method for uri [{uri}] and method [{method}], allowed: [{', '.join(allowed)}]",
                405,
                {"Allow": ",".join(allowed)},
            ),
        )
    if exc.status_code == 404:
        return await on_rest_error(request, RestError(f"no handler found for uri [{uri}] and method [{method}]", 400))
    return await on_rest_error(request, RestError(str(exc.detail), exc.status_code))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    error = ElasticsearchError(f"{type(exc).__name__}: {exc}")
    return await on_elasticsearch_error(request, error)


async def on_content_too_large(request: Request, exc: ContentTooLarge) -> Response:
    # Elasticsearch's `Netty4HttpContentSizeHandler`: 413, no body, and the connection closed.
    return Response(b"", status_code=413, headers={"Connection": "close"})


# nginx's "client closed request": counted apart from the server's own errors in the metrics.
CLIENT_CLOSED = 499


async def on_client_disconnect(request: Request, exc: ClientDisconnect) -> Response:
    """The client went away while sending its body: nothing to answer, nothing to log."""
    return Response(b"", status_code=CLIENT_CLOSED, headers={"Connection": "close"})


async def on_store_write_error(request: Request, exc: StoreWriteError) -> Response:
    """State that cannot be saved: 503 (the request may succeed once the data directory is writable)."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return await on_elasticsearch_error(request, StatusException(str(exc), 503))


E = TypeVar("E", bound=Exception)


def _handle(app: FastAPI, kind: type[E], handler: Callable[[Request, E], Awaitable[Response]]) -> None:
    # Starlette types every handler as taking `Exception`; each of these is registered for its
    # own exception class, so it only ever receives that.
    app.add_exception_handler(kind, cast(Callable[[Request, Exception], Awaitable[Response]], handler))


def install_error_handlers(app: FastAPI) -> None:
    _handle(app, StoreWriteError, on_store_write_error)
    _handle(app, ContentTooLarge, on_content_too_large)
    _handle(app, ClientDisconnect, on_client_disconnect)
    _handle(app, ElasticsearchError, on_elasticsearch_error)
    _handle(app, RestError, on_rest_error)
    _handle(app, HTTPException, on_http_error)
    _handle(app, Exception, on_unexpected)
