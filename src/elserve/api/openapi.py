"""The OpenAPI description of every route elserve serves, generated from the routes themselves.

FastAPI gives the paths, methods and path parameters; the routes read their query
parameters and bodies by hand (Elasticsearch's strict parsing), so this adds what
`require(action, params)` allows on each route and a schema of each body, and marks
elserve's own extensions. Served at `GET /_elserve/openapi.json`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from elserve.api.params import COMMON
from elserve.version import ES_VERSION

_EXTENSIONS = ("/_prometheus", "/_elserve")

_STRINGS = {"type": "array", "items": {"type": "string"}}
_OBJECT: dict[str, Any] = {"type": "object"}
_ADAPTIVE = {
    "type": "object",
    "properties": {
        "enabled": {"type": "boolean"},
        "min_number_of_allocations": {"type": "integer"},
        "max_number_of_allocations": {"type": "integer"},
    },
}
_SERVICE_SETTINGS = {
    "type": "object",
    "properties": {
        "model_id": {"type": "string"},
        "num_allocations": {"type": "integer"},
        "num_threads": {"type": "integer"},
        "deployment_id": {"type": "string"},
        "adaptive_allocations": _ADAPTIVE,
    },
}

_INFER_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["docs"],
    "properties": {
        "docs": {"type": "array", "items": _OBJECT},
        "timeout": {"type": "string"},
        "inference_config": _OBJECT,
    },
}

# Request bodies by (method, path template).
_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/_inference/{inference_id}"): {
        "type": "object",
        "required": ["service", "service_settings"],
        "properties": {
            "service": {"type": "string", "enum": ["elasticsearch", "elser"]},
            "service_settings": _SERVICE_SETTINGS,
            "task_settings": _OBJECT,
            "chunking_settings": _OBJECT,
        },
    },
    ("PUT", "/_inference/{inference_id}/_update"): {
        "type": "object",
        "properties": {"service_settings": _SERVICE_SETTINGS, "task_settings": _OBJECT, "chunking_settings": _OBJECT},
    },
    ("POST", "/_inference/{inference_id}"): {
        "type": "object",
        "required": ["input"],
        "properties": {
            "input": {"oneOf": [{"type": "string"}, _STRINGS]},
            "input_type": {"type": "string"},
            "task_settings": _OBJECT,
            "timeout": {"type": "string"},
        },
    },
    ("POST", "/_ml/trained_models/{model_id}/_infer"): _INFER_BODY,
    ("POST", "/_ml/trained_models/{model_id}/deployment/_infer"): _INFER_BODY,
    ("POST", "/_ml/trained_models/{model_id}/deployment/_start"): {
        "type": "object",
        "properties": {"adaptive_allocations": _ADAPTIVE},
    },
    ("POST", "/_ml/trained_models/{deployment_id}/deployment/_update"): {
        "type": "object",
        "properties": {"number_of_allocations": {"type": "integer"}, "adaptive_allocations": _ADAPTIVE},
    },
}


def _body_for(method: str, path: str) -> dict[str, Any] | None:
    # `/{task_type}/{inference_id}` forms take the same body as `/{inference_id}`.
    return _BODIES.get((method, path.replace("/{task_type}", "")))


def _query_params(route: Any) -> list[str]:
    """The names `require(action, params)` allows on this route, read from its dependency."""
    names: set[str] = set(COMMON)
    for dependant in route.dependant.dependencies:
        names |= getattr(dependant.call, "query_params", frozenset())
    return sorted(names)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title="elserve",
        version=ES_VERSION,
        description="Elasticsearch's inference and trained-model APIs for sparse embeddings, and elserve's "
        "extensions (tagged `elserve extension`). Every route needs HTTP Basic credentials.",
        routes=app.routes,
    )
    doc.setdefault("components", {})["securitySchemes"] = {"basic": {"type": "http", "scheme": "basic"}}
    doc["security"] = [{"basic": []}]
    # Routes as mounted (prefix included); each proxies its `APIRoute` (`dependant`, `methods`).
    routes = {
        (method, context.path_format): context
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.methods or ()  # an APIRoute always has its methods
    }
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            route = routes.get((method.upper(), path))
            if route is None:
                continue
            # FastAPI takes a handler's optional path arguments (unused by this path) for query
            # parameters; the real ones are what `require` allows.
            path_params = [p for p in operation.get("parameters", []) if p["in"] == "path"]
            operation["parameters"] = path_params + [
                {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
                for name in _query_params(route)
            ]
            body = _body_for(method.upper(), path)
            if body is not None:
                operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
            operation["tags"] = ["elserve extension" if path.startswith(_EXTENSIONS) else "Elasticsearch"]
            operation.pop("responses", None)
            operation["responses"] = {"default": {"description": "Elasticsearch's answer (errors in its error body)"}}
    return doc
