"""Jackson's `line:column` of top-level fields."""

from __future__ import annotations

from elserve.endpoints.json_location import Location, compact_source, top_level_fields


def test_compact_body_as_the_python_client_sends_it() -> None:
    source = compact_source({"input": ["a", 1], "top_n": 3})
    assert source == b'{"input":["a",1],"top_n":3}'
    fields = top_level_fields(source)
    assert fields["input"].name == Location(1, 2)
    assert fields["input"].value.location == Location(1, 10)
    assert [item.location for item in fields["input"].items] == [Location(1, 11), Location(1, 15)]
    assert fields["top_n"].value.location == Location(1, 26)
    assert fields["top_n"].value.text == "3"


def test_lines_and_columns_count_bytes() -> None:
    fields = top_level_fields('{\r\n "é": 1,\n\t"x" :\n  [ true ,null ]}'.encode())
    assert fields["é"].name == Location(2, 2)
    assert fields["é"].value.location == Location(2, 8)  # "é" is two bytes in UTF-8
    assert fields["x"].name == Location(3, 2)
    assert [(i.location, i.text) for i in fields["x"].items] == [(Location(4, 5), "true"), (Location(4, 11), "null")]


def test_escapes_and_nested_values() -> None:
    fields = top_level_fields(b'{"a\\"b": {"x": [1, {"y": "]"}]}, "c": "\\\\"}')
    assert fields['a"b'].value.location == Location(1, 10)
    assert fields["c"].name == Location(1, 34)


def test_not_an_object() -> None:
    assert top_level_fields(b"[1]") == {}
    assert top_level_fields(b"") == {}
