"""Elasticsearch's `filter_path` response filtering.

A comma-separated list of dotted paths; `*` matches within one name, `**` any
number of levels, a leading `-` excludes. Arrays are transparent: a path applies
to each element. Includes run first, then excludes.
"""

from __future__ import annotations

import fnmatch
from typing import Any

_MISSING = object()


def _split(expr: str) -> list[list[str]]:
    return [p.split(".") for p in (e.strip() for e in expr.split(",")) if p]


def _matches(pattern: str, key: str) -> bool:
    return pattern == key or ("*" in pattern and fnmatch.fnmatchcase(key, pattern))


def _include(value: Any, paths: list[list[str]]) -> Any:
    if any(not p for p in paths):
        return value  # a path ended here: keep the whole subtree
    if isinstance(value, list):
        kept = [v for v in (_include(item, paths) for item in value) if v is not _MISSING]
        return kept if kept else _MISSING
    if not isinstance(value, dict):
        return _MISSING
    out: dict[str, Any] = {}
    for key, child in value.items():
        rest: list[list[str]] = []
        for path in paths:
            head = path[0]
            if head == "**":
                rest.append(path)  # ** may swallow this level too
                if len(path) > 1 and _matches(path[1], key):
                    rest.append(path[2:])
            elif _matches(head, key):
                rest.append(path[1:])
        if rest:
            filtered = _include(child, rest)
            if filtered is not _MISSING:
                out[key] = filtered
    return out if out else _MISSING


def _exclude(value: Any, paths: list[list[str]]) -> Any:
    if isinstance(value, list):
        return [_exclude(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, child in value.items():
        rest: list[list[str]] = []
        dropped = False
        for path in paths:
            head = path[0]
            if head == "**":
                rest.append(path)
                if len(path) > 1 and _matches(path[1], key):
                    if len(path) == 2:
                        dropped = True
                    rest.append(path[2:])
            elif _matches(head, key):
                if len(path) == 1:
                    dropped = True
                rest.append(path[1:])
        if dropped:
            continue
        out[key] = _exclude(child, [p for p in rest if p]) if rest else child
    return out


def apply_filter_path(body: Any, expression: str) -> Any:
    """Filter a response body as Elasticsearch's `filter_path` does (nothing kept: `{}`)."""
    includes = [p for p in _split(expression) if not p[0].startswith("-")]
    excludes = [[p[0][1:], *p[1:]] for p in _split(expression) if p[0].startswith("-")]
    if includes:
        body = _include(body, includes)
        if body is _MISSING:
            return {}
    if excludes:
        body = _exclude(body, excludes)
    return body
