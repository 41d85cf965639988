"""`none`: the whole input as one chunk (Elasticsearch's `NoopChunker`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from elserve.chunking.chunker import ChunkOffset
from elserve.chunking.settings import NoneChunkingSettings
from elserve.chunking.text import Utf16Text


@dataclass(frozen=True)
class NoneChunker:
    settings: NoneChunkingSettings = field(default_factory=NoneChunkingSettings)

    def chunk(self, text: Utf16Text) -> list[ChunkOffset]:
        return [ChunkOffset(0, text.length)]
