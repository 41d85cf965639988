"""Separators are Java regexes (compiled with `Pattern.MULTILINE`); this runs them with the `regex` module.

The two dialects agree on almost everything separators use; what changes where
a match falls is rewritten here, following the Java flags in force (`s`, `m`,
`d`, `U`, set inline as `(?s)` or `(?s:...)`):
- `.` stops at every Java line terminator (`\\n`, `\\r`, `\\u0085`, `\\u2028`, `\\u2029`), not only `\\n`;
- `^` and `$` (multi-line) know the same terminators, treat `\\r\\n` as one, and `^` never matches at the very end;
- `\\s`, `\\d`, `\\w` are ASCII classes, as in Java without `UNICODE_CHARACTER_CLASS`, and so is
  the word boundary `\\b` of the JDKs Elasticsearch 9 ships (JDK 19+);
- `\\Q...\\E` quotes, `\\z` / `\\Z` / `\\h` / `\\R` keep Java's meaning.
`regex` also brings what Java has and `re` lacks: possessive quantifiers,
atomic groups, bounded variable-length look-behind, `\\p{...}` classes, and a
time limit, which stands in for Elasticsearch's read limit on the input.
Left as `regex` reads them: case folding under `(?i)` (Unicode, where Java's is
ASCII unless `(?u)`), and Java-only class syntax (`[a&&[b]]`, `\\p{javaLowerCase}`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import regex

_TERMINATORS = "\\n\\r\\x85\\u2028\\u2029"
_SPACE = " \\t\\n\\x0B\\f\\r"
_HSPACE = " \\t\\xA0\\u1680\\u180e\\u2000-\\u200a\\u202f\\u205f\\u3000"
_END_OF_INPUT = f"(?=(?:\\r\\n|[{_TERMINATORS}])?\\Z)"  # Java's `\Z`, and `$` without MULTILINE

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
    "Z": _END_OF_INPUT,
    # Since JDK 19 (JDK-8264160) `\b` agrees with the ASCII `\w`; Elasticsearch 9 bundles a newer JDK.
    "b": "(?:(?<=[a-zA-Z0-9_])(?![a-zA-Z0-9_])|(?<![a-zA-Z0-9_])(?=[a-zA-Z0-9_]))",
    "B": "(?:(?<=[a-zA-Z0-9_])(?=[a-zA-Z0-9_])|(?<![a-zA-Z0-9_])(?![a-zA-Z0-9_]))",
}
_INSIDE = {"s": _SPACE, "d": "0-9", "w": "a-zA-Z_0-9", "h": _HSPACE}
_UNICODE_CLASSES = frozenset("sSdDwWbB")

# `(?flags)` or `(?flags:` with Java's flag letters; the ones this module applies itself:
_INLINE_FLAGS = regex.compile(r"\(\?([idmsuxU]*)(?:-([idmsuxU]*))?([:)])")
_FLAG_FIELDS = {"s": "dotall", "m": "multiline", "d": "unix_lines", "U": "unicode_classes"}


@dataclass(frozen=True)
class _Flags:
    dotall: bool = False
    multiline: bool = True  # Elasticsearch compiles with MULTILINE
    unix_lines: bool = False  # only `\n` ends a line
    unicode_classes: bool = False

    def set(self, on: str, off: str) -> _Flags:
        changes = {_FLAG_FIELDS[c]: True for c in on if c in _FLAG_FIELDS}
        changes |= {_FLAG_FIELDS[c]: False for c in off if c in _FLAG_FIELDS}
        return replace(self, **changes)

    def dot(self) -> str:
        if self.dotall:
            return "(?s:.)"
        return "[^\\n]" if self.unix_lines else f"[^{_TERMINATORS}]"

    def line_start(self) -> str:
        if not self.multiline:
            return "\\A"
        if self.unix_lines:
            return "(?:\\A|(?<=\\n)(?!\\Z))"
        return f"(?:\\A|(?<=[{_TERMINATORS}])(?!\\Z)(?!(?<=\\r)\\n))"

    def line_end(self) -> str:
        if self.unix_lines:
            return "(?:(?=\\n)|\\Z)" if self.multiline else "(?=\\n?\\Z)"
        if self.multiline:
            return f"(?:\\Z|(?=[{_TERMINATORS}])(?!(?<=\\r)\\n))"
        return _END_OF_INPUT


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.out: list[str] = []
        self.flags = _Flags()
        # Per open group: the flags to restore at its `)`, and how many `(?i:` wrappers close with it.
        self.groups: list[tuple[_Flags, int]] = []
        self.wrappers = 0  # `(?i:` opened for an inline `(?i)` in the current group

    def run(self) -> str:
        i, n = 0, len(self.pattern)
        while i < n:
            i = self.step(i)
        self.out.append(")" * self.wrappers)
        return "".join(self.out)

    def step(self, i: int) -> int:
        pattern, char = self.pattern, self.pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            return self.escape(i, in_class=False)
        if char == "[":
            return self.char_class(i)
        if char == "(":
            return self.open_group(i)
        if char == ")":
            self.out.append(")" * self.wrappers + ")")
            if self.groups:
                self.flags, self.wrappers = self.groups.pop()
            return i + 1
        if char == ".":
            self.out.append(self.flags.dot())
        elif char == "^":
            self.out.append(self.flags.line_start())
        elif char == "$":
            self.out.append(self.flags.line_end())
        else:
            self.out.append(char)
        return i + 1

    def escape(self, i: int, in_class: bool) -> int:
        escaped = self.pattern[i + 1]
        if escaped == "Q":
            end = self.pattern.find("\\E", i + 2)
            quoted = self.pattern[i + 2 :] if end < 0 else self.pattern[i + 2 : end]
            self.out.append(regex.escape(quoted))
            return len(self.pattern) if end < 0 else end + 2
        if self.flags.unicode_classes and escaped in _UNICODE_CLASSES:
            self.out.append("\\" + escaped)
        else:
            self.out.append((_INSIDE if in_class else _OUTSIDE).get(escaped, "\\" + escaped))
        return i + 2

    def char_class(self, i: int) -> int:
        """A `[...]` (Java allows nested ones): copied, with escapes rewritten; a leading `]` is literal."""
        pattern = self.pattern
        self.out.append("[")
        i += 1
        if pattern.startswith("^", i):
            self.out.append("^")
            i += 1
        if pattern.startswith("]", i):
            self.out.append("\\]")
            i += 1
        depth = 1
        while i < len(pattern) and depth:
            char = pattern[i]
            if char == "\\" and i + 1 < len(pattern):
                i = self.escape(i, in_class=True)
                continue
            depth += {"[": 1, "]": -1}.get(char, 0)
            self.out.append(char)
            i += 1
        return i

    def open_group(self, i: int) -> int:
        inline = _INLINE_FLAGS.match(self.pattern, i)
        if inline is None:
            self.groups.append((self.flags, self.wrappers))
            self.wrappers = 0
            self.out.append("(")
            return i + 1
        on, off, close = inline.group(1), inline.group(2) or "", inline.group(3)
        # The flags applied here leave the pattern; `i`, `u`, `x` stay, scoped as Java scopes them.
        kept_on = "".join(c for c in on if c not in _FLAG_FIELDS)
        kept_off = "".join(c for c in off if c not in _FLAG_FIELDS)
        kept = kept_on + (f"-{kept_off}" if kept_off else "")
        if close == ":":
            self.groups.append((self.flags, self.wrappers))
            self.wrappers = 0
            self.out.append(f"(?{kept}:")
        elif kept:
            # `(?i)` holds to the end of the enclosing group: a scoped group closed there.
            self.out.append(f"(?{kept}:")
            self.wrappers += 1
        self.flags = self.flags.set(on, off)
        return inline.end()


def translate(pattern: str) -> str:
    """A Java regex rewritten for `regex` (V0), keeping Java's matches (MULTILINE on, as Elasticsearch compiles)."""
    return _Translator(pattern).run()


@lru_cache(maxsize=256)
def compile_separator(pattern: str) -> regex.Pattern:
    """The compiled separator; `regex.error` (a message and position) when it is not a valid pattern."""
    return regex.compile(translate(pattern), regex.V0)


def separator_error(pattern: str) -> str | None:
    """Why `pattern` cannot be a separator, or None when it compiles."""
    try:
        compile_separator(pattern)
    except (regex.error, ValueError, OverflowError, RecursionError) as error:
        return str(error)
    return None
