"""Byte sizes as Elasticsearch's settings take them."""

from __future__ import annotations

import pytest

from elserve.bytesize import byte_size_rep, parse_byte_size
from elserve.errors import ParseException


@pytest.mark.parametrize(
    "text, size", [("100mb", 100 << 20), ("16kb", 16384), ("4KB", 4096), ("1gb", 1 << 30), ("512b", 512), ("0", 0)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_byte_size(text, "x") == size


@pytest.mark.parametrize("text", ["100", "mb", "-1mb", "1 parsec"])
def test_refused(text: str) -> None:
    with pytest.raises(ParseException, match="unit is missing or unrecognized"):
        parse_byte_size(text, "x")


@pytest.mark.parametrize(
    "text, size, rep",
    [
        ("0", 0, "0"),
        ("10kb", 10240, "10kb"),
        ("10KB", 10240, "10kb"),
        ("512b", 512, "512b"),
        ("1.5kb", 1536, "1536b"),
        ("2.0mb", 2 << 20, "2mb"),
    ],
)
def test_string_rep(text: str, size: int, rep: str) -> None:
    """`ByteSizeValue.getStringRep()` of a size as given: what `task_parameters.cache_size` echoes."""
    assert byte_size_rep(text, "cache_size") == (size, rep)
