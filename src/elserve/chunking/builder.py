"""`ChunkerBuilder`: the chunker for a strategy's settings, and chunking a string in one call."""

from __future__ import annotations

from elserve.chunking.chunker import Chunker, ChunkOffset
from elserve.chunking.none import NoneChunker
from elserve.chunking.recursive import RecursiveChunker
from elserve.chunking.sentence import SentenceChunker
from elserve.chunking.settings import (
    ChunkingSettings,
    NoneChunkingSettings,
    RecursiveChunkingSettings,
    SentenceChunkingSettings,
    WordChunkingSettings,
)
from elserve.chunking.text import Utf16Text
from elserve.chunking.word import WordChunker


def build_chunker(settings: ChunkingSettings) -> Chunker:
    if isinstance(settings, WordChunkingSettings):
        return WordChunker(settings)
    if isinstance(settings, SentenceChunkingSettings):
        return SentenceChunker(settings)
    if isinstance(settings, RecursiveChunkingSettings):
        return RecursiveChunker(settings)
    if isinstance(settings, NoneChunkingSettings):
        return NoneChunker(settings)
    raise TypeError(f"no chunker for {settings!r}")


def chunk(text: str | Utf16Text, settings: ChunkingSettings) -> list[ChunkOffset]:
    """The `[start, end)` UTF-16 offsets Elasticsearch's chunker gives for `text`."""
    document = text if isinstance(text, Utf16Text) else Utf16Text(text)
    return build_chunker(settings).chunk(document)
