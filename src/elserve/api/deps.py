"""Request dependencies: who is calling, may they, and which query parameters are allowed.

Routes declare `dependencies=[Depends(require(ACTION))]`; a route whose check
depends on the request (the caller's own account or API keys) takes
`authenticated()` and calls `check`. Authentication (Basic, ApiKey),
authorization and their audit lines live only here; the rules themselves are
in `security/`.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any, Literal, overload

import orjson
from fastapi import Request

from elserve.api.json_parsing import parse_json_body
from elserve.api.params import check_params
from elserve.api.rendering import check_media_types
from elserve.errors import JsonParseException, ParseException, SecurityException
from elserve.security import audit
from elserve.security.authc import Security
from elserve.security.authz import Principal, authorize
from elserve.security.users import authentication_failed, missing_credentials


def request_uri(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


def security(request: Request) -> Security:
    return request.app.state.services.security


async def _authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise missing_credentials(request_uri(request))
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "apikey":
        return security(request).api_key(credentials)
    if scheme.lower() != "basic":
        raise authentication_failed("", request_uri(request))
    try:
        username, sep, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
    except ValueError:  # bad base64, non-ASCII header text, or bytes that are not UTF-8
        raise missing_credentials(request_uri(request)) from None
    if not sep:
        raise missing_credentials(request_uri(request))
    try:
        return await security(request).basic(username, password, _address(request))
    except SecurityException as exc:
        request.state.claimed_user = username
        if exc.status == 401:
            raise authentication_failed(username, request_uri(request)) from None
        raise


async def authenticate(request: Request) -> Principal:
    """The caller, or 401 (with an audit line)."""
    try:
        return await _authenticate(request)
    except SecurityException as exc:
        user = getattr(request.state, "claimed_user", None)
        audit.authentication_failed(user, _address(request), request.method, request.url.path, exc.status)
        raise


def check(
    request: Request, principal: Principal, action: str, *, own_api_key: bool = False, same_user: bool = False
) -> None:
    """Authorize `action` for a request whose answer depends on its content (own keys, own account)."""
    try:
        authorize(principal, action, own_api_key=own_api_key, same_user=same_user)
    except SecurityException:
        audit.access_denied(principal, action, _address(request), request.method, request.url.path)
        raise


def authenticated(params: frozenset[str] = frozenset()) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: authenticate, check media types and query parameters; the route authorizes."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        check_media_types(request, has_body=int(request.headers.get("content-length") or 0) > 0)
        check_params(request, params)
        return principal

    dependency.query_params = params  # type: ignore[attr-defined]  # read by the OpenAPI description
    return dependency


def require(action: str, params: frozenset[str] = frozenset()) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency: authenticate, check media types and query parameters, then authorize `action`."""
    inner = authenticated(params)

    async def dependency(request: Request) -> Principal:
        principal = await inner(request)
        check(request, principal, action)
        return principal

    dependency.query_params = params  # type: ignore[attr-defined]  # read by the OpenAPI description
    return dependency


@overload
async def json_body(request: Request, required: Literal[True] = True) -> dict[str, Any]: ...
@overload
async def json_body(request: Request, required: bool) -> dict[str, Any] | None: ...


async def json_body(request: Request, required: bool = True) -> dict[str, Any] | None:
    """The body as a JSON object (None for an empty optional body), or Elasticsearch's parse errors."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ParseException("request body is required")
        return None
    try:
        body = await parse_json_body(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseException("Failed to parse content to map", caused_by=JsonParseException(str(exc))) from None
    if not isinstance(body, dict):
        raise ParseException(
            "Failed to parse content to map",
            caused_by=JsonParseException(f"request body must be a JSON object, found {type(body).__name__}"),
        )
    return body
