"""What every chunker answers: offset ranges `[start, end)` into the input (Elasticsearch's `Chunker`)."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from elserve.chunking.text import Utf16Text


class ChunkOffset(NamedTuple):
    """`Chunker.ChunkOffset`: a range of UTF-16 offsets, as Elasticsearch's `String` offsets."""

    start: int
    end: int


class Chunker(Protocol):
    def chunk(self, text: Utf16Text) -> list[ChunkOffset]: ...
