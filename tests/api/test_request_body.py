"""Request bodies: decompressed incrementally, never more than the limit held."""

from __future__ import annotations

import gzip
import zlib

import pytest

from elserve.api.request_body import DecompressionFailed, _Inflater

TEXT = b'{"input": "' + b"hello " * 1000 + b'"}'


@pytest.mark.parametrize(
    "encoding, data",
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)),
        ("deflate", zlib.compress(TEXT)[2:-4]),  # raw deflate
    ],
    # Named, not by their bytes: gzip's header holds the time, and xdist's processes must collect the same ids.
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw"],
)
def test_inflates_in_pieces(encoding: str, data: bytes) -> None:
    inflater = _Inflater(encoding)
    pieces = [data[i : i + 100] for i in range(0, len(data), 100)]
    out = b"".join(inflater.feed(p, 1 << 20, last=i == len(pieces) - 1) for i, p in enumerate(pieces))
    assert out == TEXT


def test_a_bomb_yields_one_byte_over_the_allowance_and_no_more() -> None:
    bomb = gzip.compress(b"a" * (50 << 20))
    out = _Inflater("gzip").feed(bomb, 1000, last=True)
    assert len(out) == 1001  # the caller sees "over the limit"; 50 MB were never produced


def test_truncated_and_corrupt_bodies_are_parse_errors() -> None:
    data = gzip.compress(TEXT)
    with pytest.raises(DecompressionFailed, match="ends before its end"):
        _Inflater("gzip").feed(data[: len(data) // 2], 1 << 20, last=True)
    with pytest.raises(DecompressionFailed, match="does not decompress"):
        _Inflater("gzip").feed(gzip.compress(b"")[:10] + b"\xff" * 20, 1 << 20, last=True)  # a reserved block type
    assert DecompressionFailed("x").type == "parse_exception"
