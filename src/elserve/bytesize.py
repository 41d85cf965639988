"""Elasticsearch's `ByteSizeValue`: sizes written with a unit (`100mb`, `16kb`), as its settings take them."""

from __future__ import annotations

import re

from elserve.errors import ParseException

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|pb)$")
_UNIT_BYTES = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}


def parse_byte_size(text: str, setting: str) -> int:
    """`100mb` -> 104857600; a bare `0` is allowed, any other number needs its unit (as in Elasticsearch)."""
    value = text.strip().lower()
    if value == "0":
        return 0
    match = _SIZE.match(value)
    if match is None:
        raise ParseException(
            f"failed to parse setting [{setting}] with value [{text}] as a size in bytes: "
            "unit is missing or unrecognized"
        )
    return int(float(match.group(1)) * _UNIT_BYTES[match.group(2)])


def byte_size_text(n: int) -> str:
    """`ByteSizeValue.toString()`: the largest unit with one decimal, e.g. `16.8mb`."""
    for unit, size in (("pb", 1 << 50), ("tb", 1 << 40), ("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)):
        if n >= size:
            value = round(n / size, 1)
            return f"{value:g}{unit}" if value != int(value) else f"{int(value)}{unit}"
    return f"{n}b"


def byte_size_rep(text: str, setting: str) -> tuple[int, str]:
    """(bytes, `ByteSizeValue.getStringRep()`) of a size as given: `0` stays `0`, a whole number of
    the given unit keeps it (`10kb`), anything else is written in bytes (`1536b`)."""
    n = parse_byte_size(text, setting)
    if n <= 0:
        return n, str(n)
    match = _SIZE.match(text.strip().lower())
    unit = match.group(2) if match else "b"
    if n % _UNIT_BYTES[unit] == 0:
        return n, f"{n // _UNIT_BYTES[unit]}{unit}"
    return n, f"{n}b"
