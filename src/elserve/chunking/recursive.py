"""`recursive`: split at separator regexes, merge neighbours up to `max_chunk_size` words, recurse.

Elasticsearch's `RecursiveChunker`:
- a range that is empty or fits is one chunk;
- otherwise it is split at the start of each match of the next separator (the
  separator leads the following piece), neighbouring pieces merge while the sum
  of their word counts stays <= max, and each merged piece that is still too
  big recurses with the separator after;
- when the separators run out, the sentence chunker (overlap 0) splits the
  range, as a text of its own.
Word counts come from `ChunkerUtils.countWords` on the whole input. Each
separator sees only its range, as a Java matcher with a region does (opaque,
anchoring bounds); its matching time is bounded, where Elasticsearch bounds the
characters a regex may read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import regex

from elserve.chunking.chunker import ChunkOffset
from elserve.chunking.java_regex import compile_separator
from elserve.chunking.segmentation import WordIndex
from elserve.chunking.sentence import sentence_chunks
from elserve.chunking.settings import RecursiveChunkingSettings
from elserve.chunking.text import Utf16Text
from elserve.errors import IllegalArgumentException

# Time a separator's matching may take on one range: a floor, plus a rate far below any linear regex's speed.
REGEX_SECONDS_FLOOR = 1.0
REGEX_SECONDS_PER_MB = 4.0


class _Piece(NamedTuple):
    offset: ChunkOffset
    words: int


class _Run:
    """One chunking of one input: the text, its word index, the settings."""

    def __init__(self, text: Utf16Text, separators: tuple[str, ...], max_words: int) -> None:
        self.text = text
        self.words = WordIndex(text)
        self.separators = separators
        self.max_words = max_words

    def piece(self, start: int, end: int) -> _Piece:
        return _Piece(ChunkOffset(start, end), self.words.count_words(start, end))

    def chunk(self, offset: ChunkOffset, level: int) -> list[ChunkOffset]:
        if offset.start == offset.end or self.piece(*offset).words <= self.max_words:
            return [offset]
        if level >= len(self.separators):
            return self.backup(offset)
        chunks: list[ChunkOffset] = []
        for merged in self.merge(self.split(offset, self.separators[level])):
            if merged.words <= self.max_words:
                chunks.append(merged.offset)
            else:
                chunks.extend(self.chunk(merged.offset, level + 1))
        return chunks

    def split(self, offset: ChunkOffset, separator: str) -> Iterator[_Piece]:
        """The pieces between the starts of the separator's matches, as a Java `Matcher.find()` loop finds them."""
        region = self.text.sub(offset.start, offset.end)
        text = region.text
        budget = REGEX_SECONDS_FLOOR + REGEX_SECONDS_PER_MB * len(text) / 1e6
        spent = 0.0  # time inside the regex engine only: the pieces are counted in between
        start = offset.start
        position = 0
        try:
            pattern = compile_separator(separator)
            while position <= len(text):
                began = time.perf_counter()
                match = pattern.search(text, position, timeout=max(budget - spent, 1e-3))
                spent += time.perf_counter() - began
                if match is None:
                    break
                end = offset.start + region.to_utf16(match.start())
                if start < end:
                    yield self.piece(start, end)
                start = end
                # After an empty match Java's next search starts one character on.
                position = match.end() + 1 if match.end() == match.start() else match.end()
        except TimeoutError:
            raise IllegalArgumentException(
                f"Chunk separator regex [{separator}] has exceeded the time limit of [{budget:.1f}s]"
            ) from None
        except regex.error as error:  # a stored separator that no longer compiles
            raise IllegalArgumentException(f"Invalid chunk separator regex [{separator}]: {error}") from None
        if start < offset.end:
            yield self.piece(start, offset.end)

    def merge(self, pieces: Iterable[_Piece]) -> list[_Piece]:
        """Neighbours joined while their summed word counts stay within the maximum (one pass, as they come)."""
        merged: list[_Piece] = []
        current = None
        for following in pieces:
            if current is None:
                current = following
                continue
            joined = _Piece(ChunkOffset(current.offset.start, following.offset.end), current.words + following.words)
            if joined.words <= self.max_words:
                current = joined
            else:
                merged.append(current)
                current = following
        if current is not None:
            merged.append(current)
        return merged

    def backup(self, offset: ChunkOffset) -> list[ChunkOffset]:
        chunks = sentence_chunks(self.text.sub(offset.start, offset.end), self.max_words, False)
        return [ChunkOffset(c.start + offset.start, c.end + offset.start) for c in chunks]


@dataclass(frozen=True)
class RecursiveChunker:
    settings: RecursiveChunkingSettings

    def chunk(self, text: Utf16Text) -> list[ChunkOffset]:
        run = _Run(text, self.settings.separators, self.settings.max_chunk_size)
        return run.chunk(ChunkOffset(0, text.length), 0)
