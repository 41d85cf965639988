"""Where each top-level field of a JSON object sits, as Jackson reports it (`line:column`).

Elasticsearch's parse errors start with the token's location, e.g.
`[1:2] [parser] unknown field [foo]`. Jackson counts lines from 1 and columns
from 1 in bytes within the line, a token's location being its first byte (the
opening quote of a field name). Given the raw body the locations are exact;
without it they are computed on the compact serialisation the official Python
client sends (`separators=(",", ":")`, UTF-8).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_DELIMITERS = (b",", b"}", b"]", b" ", b"\t", b"\n", b"\r")


@dataclass(frozen=True)
class Location:
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


@dataclass(frozen=True)
class Span:
    """A value's location and its text as written (Jackson's `getText()` for a scalar)."""

    location: Location
    text: str


@dataclass
class FieldLocation:
    name: Location
    value: Span
    # For an array value: each element, in order.
    items: list[Span] = field(default_factory=list)


def compact_source(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def top_level_fields(source: bytes | str) -> dict[str, FieldLocation]:
    """The first occurrence of each top-level key of a JSON object; {} if the text is not one."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    try:
        return _Scanner(data).object_fields()
    except (IndexError, ValueError):
        return {}


class _Scanner:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.line = 1
        self.line_start = 0

    def location(self) -> Location:
        return Location(self.line, self.pos - self.line_start + 1)

    def skip_ws(self) -> None:
        data = self.data
        while self.pos < len(data):
            c = data[self.pos]
            if c in b" \t":
                self.pos += 1
            elif c == 0x0A:  # \n
                self.pos += 1
                self.line += 1
                self.line_start = self.pos
            elif c == 0x0D:  # \r, or \r\n: one line break
                self.pos += 1
                if self.pos < len(data) and data[self.pos] == 0x0A:
                    self.pos += 1
                self.line += 1
                self.line_start = self.pos
            else:
                return

    def expect(self, char: bytes) -> None:
        self.skip_ws()
        if self.data[self.pos : self.pos + 1] != char:
            raise ValueError(f"expected {char!r}")
        self.pos += 1

    def object_fields(self) -> dict[str, FieldLocation]:
        self.expect(b"{")
        fields: dict[str, FieldLocation] = {}
        self.skip_ws()
        if self.data[self.pos : self.pos + 1] == b"}":
            return fields
        while True:
            self.skip_ws()
            name_location = self.location()
            name = json.loads(self.data[self.pos : self.skip_string()].decode("utf-8"))
            self.expect(b":")
            self.skip_ws()
            value_location = self.location()
            start = self.pos
            items: list[Span] = []
            if self.data[self.pos : self.pos + 1] == b"[":
                items = self.array_items()
            else:
                self.skip_value()
            text = self.data[start : self.pos].decode("utf-8")
            fields.setdefault(name, FieldLocation(name_location, Span(value_location, text), items))
            self.skip_ws()
            if self.data[self.pos : self.pos + 1] == b",":
                self.pos += 1
                continue
            self.expect(b"}")
            return fields

    def array_items(self) -> list[Span]:
        self.pos += 1  # [
        items: list[Span] = []
        self.skip_ws()
        if self.data[self.pos : self.pos + 1] == b"]":
            self.pos += 1
            return items
        while True:
            self.skip_ws()
            location = self.location()
            start = self.pos
            self.skip_value()
            items.append(Span(location, self.data[start : self.pos].decode("utf-8")))
            self.skip_ws()
            if self.data[self.pos : self.pos + 1] == b",":
                self.pos += 1
                continue
            self.expect(b"]")
            return items

    def skip_string(self) -> int:
        """Moves past the string at `pos` and returns its end."""
        data = self.data
        if data[self.pos] != 0x22:
            raise ValueError("expected a string")
        # Jump from quote to quote (C speed: a 5 MB string must not hold the event loop);
        # a quote preceded by an odd run of backslashes is escaped.
        start = self.pos + 1
        search = start
        while True:
            end = data.index(b'"', search)
            backslashes = 0
            while end - backslashes - 1 >= start and data[end - backslashes - 1] == 0x5C:
                backslashes += 1
            if backslashes % 2 == 0:
                break
            search = end + 1
        self.pos = end + 1
        return self.pos

    def skip_value(self) -> None:
        self.skip_ws()
        c = self.data[self.pos : self.pos + 1]
        if c == b'"':
            self.skip_string()
        elif c == b"{":
            self.skip_container(b"}")
        elif c == b"[":
            self.skip_container(b"]")
        else:
            # A number, true, false or null: up to the next delimiter.
            while self.pos < len(self.data) and self.data[self.pos : self.pos + 1] not in _DELIMITERS:
                self.pos += 1

    def skip_container(self, closing: bytes) -> None:
        self.pos += 1
        while True:
            self.skip_ws()
            c = self.data[self.pos : self.pos + 1]
            if c == closing:
                self.pos += 1
                return
            if c in (b",", b":"):
                self.pos += 1
            else:
                self.skip_value()


def json_token(value: Any) -> str:
    """The Jackson token a parsed JSON value starts with, as Elasticsearch's parse errors name it."""
    if value is None:
        return "VALUE_NULL"
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, (int, float)):
        return "VALUE_NUMBER"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, Mapping):
        return "START_OBJECT"
    return "START_ARRAY"
