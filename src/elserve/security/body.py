"""Reading security request bodies as Elasticsearch's XContent parsers do: a field of the wrong JSON type
is named by the parser's token (`VALUE_STRING`, `START_ARRAY`, ...)."""

from __future__ import annotations

from typing import Any

from elserve.errors import ParseException


def token_name(value: Any) -> str:
    if value is None:
        return "VALUE_NULL"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, int | float):
        return "VALUE_NUMBER"
    if isinstance(value, str):
        return "VALUE_STRING"
    return "START_ARRAY" if isinstance(value, list) else "START_OBJECT"


def expect(field: str, value: Any, kind: type, kind_name: str, nullable: bool = False) -> Any:
    """`value` if it is a `kind` (or None when `nullable`), else Elasticsearch's parse error."""
    if (value is None and nullable) or isinstance(value, kind):
        return value
    raise ParseException(f"expected field [{field}] to be of type {kind_name}, but found [{token_name(value)}] instead")
