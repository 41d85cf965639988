"""Values printed the way Elasticsearch's Java code prints them inside messages.

Elasticsearch builds many messages with `String.format("%s", value)` or string
concatenation on values parsed from the request body, so a message shows Java's
`toString` of a `HashMap`, `ArrayList`, `Double`, `Boolean` or `null`:
`{num_threads=abc, foo=[1, 2]}`.

A `HashMap` prints its keys in bucket order, not insertion order. The order is
reproduced here from `String.hashCode`, the table capacity and the insertion
order (entries that share a bucket keep their insertion order, also across
resizes). The capacity depends on how the map was built, so callers say which:
`parsed_capacity(n)` for a map the JSON parser filled with `n` keys (later
removals do not shrink it), `copy_capacity(n)` for `new HashMap<>(map)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_INT_MIN = -(2**31)
_INT_MAX = 2**31 - 1
_LONG_MIN = -(2**63)
_LONG_MAX = 2**63 - 1


def java_string_hash(text: str) -> int:
    """`String.hashCode()`: 31-polynomial over UTF-16 code units, as a signed 32-bit int."""
    h = 0
    for unit in _utf16_units(text):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def _utf16_units(text: str) -> Iterable[int]:
    for ch in text:
        cp = ord(ch)
        if cp > 0xFFFF:
            cp -= 0x10000
            yield 0xD800 + (cp >> 10)
            yield 0xDC00 + (cp & 0x3FF)
        else:
            yield cp


def _bucket(key: str, capacity: int) -> int:
    h = java_string_hash(key) & 0xFFFFFFFF
    spread = h ^ (h >> 16)  # HashMap.hash(): h ^ (h >>> 16)
    return spread & (capacity - 1)


def parsed_capacity(puts: int) -> int:
    """Table size of a default `HashMap` after `puts` insertions (16, doubling past 0.75 load)."""
    capacity = 16
    while puts > capacity * 0.75:
        capacity *= 2
    return capacity


def copy_capacity(size: int) -> int:
    """Table size of `new HashMap<>(m)` for a source of `size` entries."""
    if size == 0:
        return 16
    wanted = int(size / 0.75 + 1.0)  # (int)(s / loadFactor + 1.0F)
    capacity = 1
    while capacity < wanted:
        capacity *= 2
    while size > capacity * 0.75:
        capacity *= 2
    return capacity


def hash_map_order(keys: Sequence[str], capacity: int) -> list[str]:
    """Iteration order of a `HashMap` of `capacity` into which `keys` were put in this order."""
    positions = {key: i for i, key in enumerate(keys)}
    return sorted(keys, key=lambda k: (_bucket(k, capacity), positions[k]))


def parsed_map_order(keys: Sequence[str], puts: int | None = None) -> list[str]:
    """Order of a map built by the JSON parser from `puts` keys (default: just these)."""
    return hash_map_order(keys, parsed_capacity(len(keys) if puts is None else puts))


def java_trim(text: str) -> str:
    """`String.trim()`: strips every char up to U+0020, not Unicode whitespace."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def java_double(value: float) -> str:
    """`Double.toString`: plain between 1e-3 and 1e7, otherwise `d.dddE±n`; shortest digits."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    if abs(value) == 5e-324:
        return f"{sign}4.9E-324"  # Double.MIN_VALUE keeps its historical two digits
    digits, exponent = _shortest_digits(abs(value))  # value = 0.digits x 10^exponent
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        if exponent <= 0:
            return f"{sign}0.{'0' * -exponent}{digits}"
        whole = digits[:exponent].ljust(exponent, "0")
        fraction = digits[exponent:] or "0"
        return f"{sign}{whole}.{fraction}"
    fraction = digits[1:] or "0"
    return f"{sign}{digits[0]}.{fraction}E{exponent - 1}"


def _shortest_digits(value: float) -> tuple[str, int]:
    # Python's repr is also the shortest string that reads back to the same double.
    mantissa, _, exp = f"{value!r}".partition("e")
    whole, _, fraction = mantissa.partition(".")
    full = whole + fraction
    leading_zeros = len(full) - len(full.lstrip("0"))
    point = len(whole) + (int(exp) if exp else 0) - leading_zeros
    return full[leading_zeros:].rstrip("0") or "0", point


def is_java_int(value: Any) -> bool:
    """True for what Jackson parses as an `Integer` (a JSON integer within 32 bits)."""
    return type(value) is int and _INT_MIN <= value <= _INT_MAX


def java_text(value: Any, *, ordered: bool = False) -> str:
    """`String.valueOf(value)` for a value parsed from JSON. Maps print as the parser built them: a
    `HashMap` in bucket order (`XContentParser.map`), or with `ordered` a `LinkedHashMap` in the
    order read (`XContentParser.mapOrdered`, as `InferModelAction.Request` parses its `docs`)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, Mapping):
        if ordered:
            return "{" + ", ".join(f"{key}={java_text(item, ordered=True)}" for key, item in value.items()) + "}"
        return java_map_text(value)
    if isinstance(value, (list, tuple)):
        return java_list_text(value, ordered=ordered)
    return str(value)


def java_list_text(items: Iterable[Any], *, ordered: bool = False) -> str:
    """`ArrayList.toString()` / `Arrays.toString()`: `[a, b]` (`ordered`: as `java_text`)."""
    return "[" + ", ".join(java_text(item, ordered=ordered) for item in items) + "]"


def java_map_text(mapping: Mapping[str, Any], capacity: int | None = None) -> str:
    """`HashMap.toString()`: `{k=v, k2=v2}` in bucket order.

    `capacity` defaults to that of a parsed map holding exactly these keys; pass
    `parsed_capacity(n)` when keys were removed from a map parsed with `n` keys.
    """
    keys = list(mapping.keys())
    capacity = parsed_capacity(len(keys)) if capacity is None else capacity
    return "{" + ", ".join(f"{key}={java_text(mapping[key])}" for key in hash_map_order(keys, capacity)) + "}"


def java_class_name(value: Any) -> str:
    """Simple class name Jackson gives a parsed JSON value (for type-error messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        if _INT_MIN <= value <= _INT_MAX:
            return "Integer"
        return "Long" if _LONG_MIN <= value <= _LONG_MAX else "BigInteger"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, str):
        return "String"
    if isinstance(value, Mapping):
        return "HashMap"
    return "ArrayList"
