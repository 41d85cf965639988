"""`word`: chunks of `max_chunk_size` words, each starting `overlap` words before the previous one ended.

Elasticsearch's `WordBoundaryChunker`: a chunk ends right after the word that
fills it; the next one starts at the boundary after word `max - overlap` of the
current window, so the spaces and punctuation between words lead the next
chunk. The tail is kept only if it has more words than the overlap (or is the
only chunk); an empty input gives one empty chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from elserve.chunking.chunker import ChunkOffset
from elserve.chunking.segmentation import WordIndex
from elserve.chunking.settings import WordChunkingSettings
from elserve.chunking.text import Utf16Text


class ChunkPosition(NamedTuple):
    """A chunk and the words it holds, overlap included (`WordBoundaryChunker.ChunkPosition`)."""

    offset: ChunkOffset
    word_count: int


def word_chunk_positions(text: Utf16Text, size: int, overlap: int) -> list[ChunkPosition]:
    """The word windows of `text`; `overlap` may be 0 but never above `size // 2`."""
    if overlap < 0 or overlap > size // 2:
        raise ValueError(f"overlap [{overlap}] must be between 0 and chunk size / 2 [{size} / 2 = {size // 2}]")
    positions: list[ChunkPosition] = []
    stride = size - overlap
    in_chunk = 0  # words in the current window, its overlap included
    since_mark = 0  # words since the next window's start was last marked
    window_start = next_start = 0
    for boundary in WordIndex(text).word_ends().tolist():
        in_chunk += 1
        since_mark += 1
        if in_chunk >= size:
            positions.append(ChunkPosition(ChunkOffset(window_start, boundary), in_chunk))
            in_chunk = overlap
            if overlap == 0:
                next_start = boundary
            window_start = next_start
        if since_mark == stride:
            next_start = boundary
            since_mark = 0
    # A tail holding only the overlap repeats the previous chunk's words; drop it unless it is all there is.
    if in_chunk > overlap or not positions:
        positions.append(ChunkPosition(ChunkOffset(window_start, text.length), in_chunk))
    return positions


@dataclass(frozen=True)
class WordChunker:
    settings: WordChunkingSettings

    def chunk(self, text: Utf16Text) -> list[ChunkOffset]:
        positions = word_chunk_positions(text, self.settings.max_chunk_size, self.settings.overlap)
        return [p.offset for p in positions]
