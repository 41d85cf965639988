"""Separators are Java regexes (compiled with `Pattern.MULTILINE`); this runs them with the `regex` module.

The two dialects agree on almost everything the separators use; the
differences that change where a match falls are rewritten here:
- `.` stops at every Java line terminator (`\\n`, `\\r`, `\\u0085`, `\\u2028`, `\\u2029`), not only `\\n`;
- `^` and `$` (multi-line) know the same terminators, treat `\\r\\n` as one, and `^` never matches at the very end;
- `\\s`, `\\d`, `\\w` are ASCII classes, as in Java without `UNICODE_CHARACTER_CLASS`;
- `\\Q...\\E` quotes, `\\z` / `\\Z` / `\\h` / `\\R` keep Java's meaning.
`regex` also brings what Java has and `re` lacks: possessive quantifiers,
atomic groups, bounded variable-length look-behind, `\\p{...}` classes, and a
time limit, which stands in for Elasticsearch's read limit on the input.
"""

from __future__ import annotations

from functools import lru_cache

import regex

_TERMINATORS = "\\n\\r\\x85\\u2028\\u2029"
_DOT = f"[^{_TERMINATORS}]"
_LINE_START = f"(?:\\A|(?<=[{_TERMINATORS}])(?!\\Z)(?!(?<=\\r)\\n))"
_LINE_END = f"(?:\\Z|(?=[{_TERMINATORS}])(?!(?<=\\r)\\n))"
_SPACE = " \\t\\n\\x0B\\f\\r"
_HSPACE = " \\t\\xA0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000"

# Java escapes whose meaning differs, outside and inside a character class.
_OUTSIDE = {
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
    "d": "[0-9]",
    "D": "[^0-9]",
    "w": "[a-zA-Z_0-9]",
    "W": "[^a-zA-Z_0-9]",
    "h": f"[{_HSPACE}]",
    "H": f"[^{_HSPACE}]",
    "R": "(?:\\r\\n|[\\n\\x0B\\f\\r\\x85\\u2028\\u2029])",
    "z": "\\Z",
    "Z": f"(?=(?:\\r\\n|[{_TERMINATORS}])?\\Z)",
}
_INSIDE = {"s": _SPACE, "d": "0-9", "w": "a-zA-Z_0-9", "h": _HSPACE}


def translate(pattern: str) -> str:
    """A Java regex rewritten for `regex` (V0) with MULTILINE, keeping Java's matches."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = 0
    while i < n:
        char = pattern[i]
        if char == "\\" and i + 1 < n:
            escaped = pattern[i + 1]
            if escaped == "Q":
                end = pattern.find("\\E", i + 2)
                quoted = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append(regex.escape(quoted))
                i = n if end < 0 else end + 2
                continue
            table = _INSIDE if in_class else _OUTSIDE
            out.append(table.get(escaped, char + escaped))
            i += 2
            continue
        if in_class:
            if char == "[":
                in_class += 1
            elif char == "]":
                in_class -= 1
            out.append(char)
        elif char == "[":
            in_class = 1
            out.append(char)
            # A `]` right after `[` or `[^` is a literal in Java.
            if pattern.startswith("^]", i + 1):
                out.append("^\\]")
                i += 2
            elif pattern.startswith("]", i + 1):
                out.append("\\]")
                i += 1
        elif char == ".":
            out.append(_DOT)
        elif char == "^":
            out.append(_LINE_START)
        elif char == "$":
            out.append(_LINE_END)
        else:
            out.append(char)
        i += 1
    return "".join(out)


@lru_cache(maxsize=256)
def compile_separator(pattern: str) -> regex.Pattern:
    """The compiled separator; `regex.error` (a message and position) when it is not a valid pattern."""
    return regex.compile(translate(pattern), regex.MULTILINE | regex.V0)


def separator_error(pattern: str) -> str | None:
    """Why `pattern` cannot be a separator, or None when it compiles."""
    try:
        compile_separator(pattern)
    except (regex.error, ValueError, OverflowError, RecursionError) as error:
        return str(error)
    return None
