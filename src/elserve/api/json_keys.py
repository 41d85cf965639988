"""Elasticsearch parses JSON with Jackson's `STRICT_DUPLICATE_DETECTION`: a key twice in one object is an error.

`JsonXContentParser` turns Jackson's `JsonParseException` ("Duplicate field 'x'") into an
`XContentParseException` at Jackson's location (`[line:column]`, the column just after the
repeated name's closing quote), with the Jackson exception as its cause. orjson keeps the
last value silently, so the body is read a second time, by the standard library, only
to find repeated keys (one C pass; the hook runs once per object).
"""

from __future__ import annotations

import json
import re
from typing import Any

from elserve.errors import JsonParseException, XContentParseException

_REDACTED = "REDACTED (`StreamReadFeature.INCLUDE_SOURCE_IN_LOCATION` disabled)"


class _Duplicate(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _pairs(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise _Duplicate(name)
        seen.add(name)


def _location(raw: bytes, name: str) -> tuple[int, int] | None:
    """Where Jackson stops on the repeated name: after the closing quote of its second occurrence as a key."""
    key = json.dumps(name, ensure_ascii=False).encode("utf-8")
    matches = list(re.finditer(re.escape(key) + rb"\s*:", raw))
    if len(matches) < 2:
        return None
    end = matches[1].start() + len(key)  # 0-based index just after the closing quote
    line_start = raw.rfind(b"\n", 0, end) + 1
    return raw.count(b"\n", 0, end) + 1, end - line_start + 1


def check_duplicate_keys(raw: bytes) -> None:
    """Raise Elasticsearch's parse error if any object of this (valid) JSON repeats a key."""
    try:
        json.loads(raw, object_pairs_hook=_pairs)
    except _Duplicate as dup:
        message = f"Duplicate field '{dup.name}'"
        where = _location(raw, dup.name)
        if where is None:
            raise XContentParseException(message, caused_by=JsonParseException(message)) from None
        line, column = where
        jackson = f"{message}\n at [Source: {_REDACTED}; line: {line}, column: {column}]"
        raise XContentParseException(f"[{line}:{column}] {jackson}", caused_by=JsonParseException(jackson)) from None
    except (ValueError, RecursionError):
        return  # orjson accepted what the standard library does not (or the reverse): its answer stands
