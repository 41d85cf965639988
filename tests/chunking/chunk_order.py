"""What every chunker's chunks satisfy: in order within the document, and (for all but the word chunker,
which may leave out a tail without words) covering it."""

from __future__ import annotations

from itertools import pairwise

from elserve.chunking import ChunkOffset


def assert_in_order(chunks: list[ChunkOffset], length: int) -> None:
    assert chunks and chunks[0].start == 0
    for previous, following in pairwise(chunks):
        assert previous.start <= following.start and previous.end <= following.end
    for piece in chunks:
        assert 0 <= piece.start <= piece.end <= length


def assert_covering(chunks: list[ChunkOffset], length: int) -> None:
    """In order, no gap, to the end. Neighbours may overlap even without `sentence_overlap`: a
    sentence longer than a chunk is split by the word chunker with overlap min(20, (max - 1) / 2)."""
    assert_in_order(chunks, length)
    assert chunks[-1].end == length
    for previous, following in pairwise(chunks):
        assert following.start <= previous.end
