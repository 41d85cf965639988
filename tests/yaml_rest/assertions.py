"""The assertions of a YAML REST test, each as Elasticsearch's runner makes it
(`MatchAssertion.java`, `IsTrueAssertion.java`, `IsFalseAssertion.java`, `LengthAssertion.java`,
`GreaterThanAssertion.java` and its siblings, `ExistsAssertion.java`, `NotExistsAssertion.java`).

- `match`: a string `/regex/` expected value matches with `find()` and `Pattern.COMMENTS`
  (whitespace and `#` comments in the pattern are ignored); numbers compare by value whatever
  their type; otherwise the values are equal, types included (`true` is not `1`).
- `is_true`: the value exists and its text is not "", "false" (any case) or "0"; `is_false`: the
  opposite, a missing value included.
- `length`: of a string, a list or an object's keys.
- `gt` / `gte` / `lt` / `lte`: natural ordering of two numbers or two strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.yaml_rest.stash import to_text


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def equal(actual: Any, expected: Any) -> bool:
    """Java's `equals` on parsed JSON, with numbers compared by value."""
    if _is_number(actual) and _is_number(expected):
        return float(actual) == float(expected)
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(equal(actual[k], expected[k]) for k in expected)
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(equal(a, e) for a, e in zip(actual, expected, strict=True))
    return actual == expected


def regex_of(expected: Any) -> str | None:
    """The pattern of a `/regex/` expected value, or None."""
    if isinstance(expected, str):
        text = expected.strip()
        if len(text) > 2 and text.startswith("/") and text.endswith("/"):
            return text[1:-1]
    return None


def assert_match(field: str, actual: Any, expected: Any) -> None:
    pattern = regex_of(expected)
    if pattern is not None:
        assert isinstance(actual, str), f"field [{field}] was expected to be a string but is {actual!r}"
        assert re.search(pattern, actual, re.VERBOSE), (
            f"field [{field}] was expected to match the provided regex but didn't: {actual!r} !~ /{pattern}/"
        )
        return
    if expected is None:
        assert actual is None, f"field [{field}] should be null but was [{to_text(actual)}]"
        return
    assert actual is not None, f"field [{field}] is null"
    assert equal(actual, expected), f"field [{field}] doesn't match the expected value: {actual!r} != {expected!r}"


def assert_is_true(field: str, actual: Any) -> None:
    assert actual is not None, f"field [{field}] doesn't have a true value (it is missing)"
    text = to_text(actual)
    assert text != "" and text.lower() != "false" and text != "0", (
        f"field [{field}] doesn't have a true value: [{text}]"
    )


def assert_is_false(field: str, actual: Any) -> None:
    if actual is None:
        return
    text = to_text(actual)
    assert text == "" or text.lower() == "false" or text == "0", f"field [{field}] has a true value: [{text}]"


def assert_length(field: str, actual: Any, expected: Any) -> None:
    length = int(expected)
    assert isinstance(actual, (str, list, dict)), f"field [{field}] has no length: {actual!r}"
    assert len(actual) == length, f"field [{field}] doesn't have length [{length}]: {len(actual)}"


_ORDER: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "gt": ("greater than", lambda a, e: a > e),
    "gte": ("greater than or equal to", lambda a, e: a >= e),
    "lt": ("less than", lambda a, e: a < e),
    "lte": ("less than or equal to", lambda a, e: a <= e),
}


def assert_order(kind: str, field: str, actual: Any, expected: Any) -> None:
    words, holds = _ORDER[kind]
    comparable = (_is_number(actual) and _is_number(expected)) or (
        isinstance(actual, str) and isinstance(expected, str)
    )
    assert comparable, f"field [{field}] is not comparable with [{to_text(expected)}]: {actual!r}"
    assert holds(actual, expected), f"field [{field}] is not {words} [{to_text(expected)}]: {to_text(actual)}"


ORDER_ASSERTIONS = tuple(_ORDER)
