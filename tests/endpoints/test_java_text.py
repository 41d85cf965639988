"""Java's printing of parsed JSON values; expected values were produced by a JDK 17 run."""

from __future__ import annotations

import pytest

from elserve.java_text import (
    copy_capacity,
    hash_map_order,
    java_double,
    java_map_text,
    java_string_hash,
    java_text,
    java_trim,
    parsed_capacity,
)


def test_string_hash() -> None:
    assert java_string_hash("foo") == 101574
    assert java_string_hash("num_threads") == -37150736
    assert java_string_hash("") == 0


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (5.0, "5.0"),
        (0.001, "0.001"),
        (1e-4, "1.0E-4"),
        (1e7, "1.0E7"),
        (9999999.0, "9999999.0"),
        (123.456, "123.456"),
        (1.5e-5, "1.5E-5"),
        (1e20, "1.0E20"),
        (12345678.0, "1.2345678E7"),
        (2.0 / 3, "0.6666666666666666"),
        (5e-324, "4.9E-324"),
        (1.7976931348623157e308, "1.7976931348623157E308"),
        (-2.5, "-2.5"),
        (0.0, "0.0"),
        (float("inf"), "Infinity"),
    ],
)
def test_double(value: float, text: str) -> None:
    assert java_double(value) == text


# (keys in insertion order, iteration order of the parsed map, of its copy), from HashMap in JDK 17.
HASH_MAP_CASES = [
    (["foo", "bar", "num_threads"], ["bar", "foo", "num_threads"], ["num_threads", "bar", "foo"]),
    (
        ["foo", "bar", "num_threads", "model_id", "extra"],
        ["bar", "foo", "extra", "num_threads", "model_id"],
        ["num_threads", "bar", "model_id", "foo", "extra"],
    ),
    (
        ["foo", "bar", "num_threads", "model_id", "extra", "zzz", "a", "b", "c", "d", "e", "f"],
        ["a", "bar", "b", "c", "d", "e", "f", "foo", "extra", "num_threads", "model_id", "zzz"],
        ["a", "b", "c", "d", "e", "f", "foo", "model_id", "bar", "extra", "num_threads", "zzz"],
    ),
    (
        ["service", "service_settings", "task_settings", "chunking_settings", "task_type"],
        ["service_settings", "service", "task_settings", "task_type", "chunking_settings"],
        ["task_settings", "service_settings", "task_type", "chunking_settings", "service"],
    ),
]


@pytest.mark.parametrize(("keys", "parsed", "copied"), HASH_MAP_CASES)
def test_hash_map_order(keys: list[str], parsed: list[str], copied: list[str]) -> None:
    in_parsed = hash_map_order(keys, parsed_capacity(len(keys)))
    assert in_parsed == parsed
    assert hash_map_order(in_parsed, copy_capacity(len(keys))) == copied


def test_capacities() -> None:
    assert [parsed_capacity(n) for n in (1, 12, 13, 24, 25)] == [16, 16, 32, 32, 64]
    assert [copy_capacity(n) for n in (1, 3, 5, 6, 12)] == [2, 8, 8, 16, 32]


def test_text_of_parsed_values() -> None:
    assert java_text(None) == "null"
    assert java_text(True) == "true"
    assert java_text([1, 2.5, None, True]) == "[1, 2.5, null, true]"
    assert java_text({"b": 1, "a": [{"z": 1, "y": 2}]}) == "{a=[{y=2, z=1}], b=1}"  # HashMap: bucket order
    assert java_text({"b": 1, "a": [{"z": 1, "y": 2}]}, ordered=True) == "{b=1, a=[{z=1, y=2}]}"  # LinkedHashMap
    assert java_map_text({"x": [1, 2.5, None, True], "inner": {"k": "v"}}) == "{x=[1, 2.5, null, true], inner={k=v}}"


def test_trim_is_javas() -> None:
    assert java_trim("\t sparse_embedding\n ") == "sparse_embedding"
    # U+00A0 is above U+0020: String.trim() keeps it.
    assert java_trim("\u00a0x") == "\u00a0x"
