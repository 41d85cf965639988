"""Every answer leaves through here: media type, `pretty`, `filter_path`, JSON by orjson."""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from elserve.api.filter_path import apply_filter_path
from elserve.api.pretty import pretty_json
from elserve.api.rest_error import RestError
from elserve.errors import StatusException
from elserve.version import BUILD_HASH, ES_VERSION

_VENDOR = re.compile(r"application/vnd\.elasticsearch\+json\s*;\s*compatible-with\s*=\s*(\d+)", re.I)
CURRENT_COMPAT = "9"
SUPPORTED_COMPAT = ("8", "9")
JSON = "application/json"


# The body types elserve reads (Elasticsearch also reads smile, cbor and yaml; elserve answers those 406).
_BODY_TYPES = re.compile(r"^\s*application/(json|x-ndjson|vnd\.elasticsearch\+(json|x-ndjson))\s*(;|$)", re.I)


def compatible_version(header: str | None) -> str | None:
    match = _VENDOR.search(header or "")
    return match.group(1) if match else None


def check_media_types(request: Request, has_body: bool) -> None:
    """Elasticsearch's `RestCompatibleVersionHelper`: versions 9 (current) and 8 only; with a body,
    a compatible (older) version on either header must be on both."""
    accept = request.headers.get("accept")
    content_type = request.headers.get("content-type")
    accept_version = compatible_version(accept) or CURRENT_COMPAT
    if accept_version not in SUPPORTED_COMPAT:
        raise StatusException(
            f"Accept version must be either version 9 or 8, but found {accept_version}. Accept={accept}", 400
        )
    if not has_body:
        return
    check_content_type(content_type)
    body_version = compatible_version(content_type) or CURRENT_COMPAT
    if body_version not in SUPPORTED_COMPAT:
        raise StatusException(
            f"Content-Type version must be either version 9 or 8, but found {body_version}. "
            f"Content-Type={content_type}",
            400,
        )
    if body_version != accept_version:
        raise StatusException(
            "A compatible version is required on both Content-Type and Accept headers if either one has "
            "requested a compatible version and the compatible versions must match. "
            f"Accept={accept}, Content-Type={content_type}",
            400,
        )


def check_content_type(content_type: str | None) -> None:
    """`RestController`: a body of a type no parser reads is 406, with a plain-string `error`."""
    if content_type is None:
        raise RestError("Content-Type header is missing", 406)
    if not _BODY_TYPES.match(content_type):
        raise RestError(f"Content-Type header [{content_type}] is not supported", 406)


def media_type(request: Request) -> str:
    version = compatible_version(request.headers.get("accept"))
    return f"application/vnd.elasticsearch+json;compatible-with={version}" if version else JSON


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    return value is not None and value.lower() != "false"


def dumps(request: Request, body: Any) -> bytes:
    filter_expr = request.query_params.get("filter_path")
    if filter_expr:
        body = apply_filter_path(body, filter_expr)
    if _flag(request, "pretty"):
        return (pretty_json(body) + "\n").encode()
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def render(
    request: Request,
    body: Any,
    status: int = 200,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
) -> Response:
    response = Response(dumps(request, body), status_code=status, media_type=media_type(request))
    if headers:
        for key, value in headers.items() if isinstance(headers, dict) else headers:
            response.headers.append(key, value)
    return response


def warning_header(message: str) -> tuple[str, str]:
    """A deprecation as Elasticsearch's `HeaderWarning` formats it: `299 Elasticsearch-<version>-<hash> "<text>"`."""
    text = message.replace("\\", "\\\\").replace('"', '\\"')
    return "Warning", f'299 Elasticsearch-{ES_VERSION}-{BUILD_HASH} "{text}"'
