"""Elasticsearch parses JSON with Jackson's `STRICT_DUPLICATE_DETECTION`: a key twice in one object is an error.

`JsonXContentParser` turns Jackson's `JsonParseException` ("Duplicate field 'x'") into an
`XContentParseException` at Jackson's location (`[line:column]`, the column just after the
repeated name's closing quote), with the Jackson exception as its cause. orjson keeps the
last value silently. So the keys are counted: every `:` of the body outside a string
separates a key from its value, and orjson's objects hold one key per distinct name. When
the counts agree there is no repeated key (`has_repeated_keys`; no second parse: a large
body would cost a second tree of objects, built holding the GIL). Only when they do not is
the body read again, by the standard library, to name the key and where it is.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

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


# A `:` escaped as `\u003a` is a colon in a parsed string but not in the raw bytes: the count would be off.
_ESCAPED_COLON = re.compile(rb"\\u003a", re.IGNORECASE)


def has_repeated_keys(raw: bytes, parsed: Any) -> bool:
    """Whether `raw` (valid JSON, `parsed` by orjson, with no colon escaped as `\\u003a`) repeats a key in
    some object. Exact: the colons of the body are its keys plus the colons inside its strings, and
    orjson writes `parsed` back with one colon per key it kept and the same strings (it never escapes a
    colon); a repeated key is a key, and perhaps some colons of a value, it did not keep."""
    return raw.count(b":") != orjson.dumps(parsed).count(b":")


def check_duplicate_keys(raw: bytes, parsed: Any = None) -> None:
    """Raise Elasticsearch's parse error if any object of this (valid) JSON repeats a key. With `parsed` (what
    orjson made of it) the keys are counted first, and the body is read again only when one repeats."""
    if parsed is not None and not _ESCAPED_COLON.search(raw) and not has_repeated_keys(raw, parsed):
        return
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
