"""Request dependencies: who is calling, may they, and which query parameters are allowed.

Routes declare `dependencies=[Depends(require(ACTION))]`; authentication and
authorization live only here, so roles, users and API keys extend this one place.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request

from elserve.api.json_keys import check_duplicate_keys
from elserve.api.params import check_params
from elserve.api.rendering import check_media_types
from elserve.errors import ElasticsearchError, JsonParseException, ParseException
from elserve.security.privileges import Principal, authorize
from elserve.security.users import authentication_failed, missing_credentials


def request_uri(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise missing_credentials(request_uri(request))
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "basic":
        raise authentication_failed("", request_uri(request))
    try:
        username, sep, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except ValueError:  # bad base64, non-ASCII header text, or bytes that are not UTF-8
        raise missing_credentials(request_uri(request)) from None
    if not sep:
        raise missing_credentials(request_uri(request))
    users = request.app.state.services.users
    try:
        # A password seen before is checked on the event loop; bcrypt (~50 ms) runs on a thread.
        return users.remembered(username, password) or await asyncio.to_thread(users.authenticate, username, password)
    except ElasticsearchError:
        raise authentication_failed(username, request_uri(request)) from None


def require(action: str, params: frozenset[str] = frozenset()) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: authenticate, check media types and query parameters, then authorize `action`."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        check_media_types(request, has_body=int(request.headers.get("content-length") or 0) > 0)
        check_params(request, params)
        authorize(principal, action)
        return principal

    return dependency


async def json_body(request: Request, required: bool = True) -> dict[str, Any] | None:
    """The body as a JSON object, or Elasticsearch's parse errors."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ParseException("request body is required")
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseException(
            "Failed to parse content to map", caused_by=JsonParseException(str(exc))
        ) from None
    if not isinstance(body, dict):
        raise ParseException(
            "Failed to parse content to map",
            caused_by=JsonParseException(f"request body must be a JSON object, found {type(body).__name__}"),
        )
    check_duplicate_keys(raw)
    return body
