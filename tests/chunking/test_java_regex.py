"""Separator regexes: Java's meaning kept, invalid ones refused on requests with a clear 400."""

from __future__ import annotations

import pytest

from elserve.chunking.java_regex import compile_separator, separator_error
from elserve.chunking.settings import parse_chunking_settings
from elserve.errors import ValidationException


def starts(pattern: str, text: str) -> list[int]:
    return [m.start() for m in compile_separator(pattern).finditer(text)]


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        (r"^x", "x\nx\rx\r\nx\u2028x", [0, 2, 4, 7, 9]),  # every Java line terminator, \r\n as one
        (r"a$", "a\ra\r\na\n", [0, 2, 5]),
        (r"^", "a\n", [0]),  # no line start at the very end, unlike Python
        (r"a.b", "a\rb a\nb a\u0085b axb", [12]),
        (r"\s", "a b\u00a0c\u2003d\te", [1, 7]),  # ASCII whitespace only
        (r"\d", "1\u0663", [0]),
        (r"\w+", "ab é", [0]),
        (r"\Qa.b\E", "axb a.b", [4]),
        (r"[\s]", "x y", [1]),
        (r"[]]", "a]", [1]),
        (r"x*+y", "xxy", [0]),  # possessive quantifier
        (r"(?<=ab{1,2})c", "abbc", [3]),  # bounded variable-length look-behind
        (r"\p{Lu}", "aBc", [1]),
        (r"(?s)a.b", "a\rb", [0]),  # inline DOTALL
        (r"(?s:a.)b.", "a\rbc a\rb\r", [0]),  # scoped: the second `.` is plain again
        (r"(?-m)^x", "x\nx", [0]),  # MULTILINE off: input start only
        (r"(?d)a.b", "a\rb a\nb", [0]),  # UNIX_LINES: only `\n` ends a line
        (r"(?U)\w+", "é", [0]),  # UNICODE_CHARACTER_CLASS
        (r"x(?i)Y(z)", "xyZ xYz Xyz", [0, 4]),  # `(?i)` to the end of the group
        (r"\b", "ab é_c", [0, 2, 4, 6]),  # ASCII word boundaries (JDK 19+)
        (r"(?U)\b", "ab é_c", [0, 2, 3, 6]),
        (r"\B", "ab", [1]),
    ],
)
def test_java_meaning(pattern: str, text: str, expected: list[int]) -> None:
    assert starts(pattern, text) == expected


@pytest.mark.parametrize("pattern", ["(", "[a", "*x", "a{2,1}"])
def test_invalid_patterns_have_a_reason(pattern: str) -> None:
    assert separator_error(pattern)


def test_invalid_separators_are_a_validation_error_listing_each() -> None:
    value = {"strategy": "recursive", "max_chunk_size": 20, "separators": ["\n", "(", "[a"]}
    with pytest.raises(ValidationException) as raised:
        parse_chunking_settings(value)
    reason = raised.value.reason
    assert "[chunking_settings] Invalid value [(]. [separators] must be valid regular expressions: missing )" in reason
    assert "Invalid value [[a]" in reason
    assert reason.startswith("Validation Failed: 1: ") and "2: " in reason


def test_stored_separators_are_trusted() -> None:
    value = {"strategy": "recursive", "max_chunk_size": 20, "separators": ["("]}
    assert parse_chunking_settings(value, enforce_request_limits=False).separators == ("(",)
