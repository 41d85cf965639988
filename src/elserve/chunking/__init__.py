"""Chunking: Elasticsearch's four chunkers (`word`, `sentence`, `recursive`, `none`) and their settings.

`chunk(text, settings)` gives the `[start, end)` offsets Elasticsearch's chunker
gives, in UTF-16 code units (Java `String` offsets; see `text.py`). Word and
sentence boundaries come from ICU (`segmentation.py`). Sources:
`x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/inference/chunking/`.
"""

from elserve.chunking.builder import build_chunker, chunk
from elserve.chunking.chunker import Chunker, ChunkOffset
from elserve.chunking.merging import MAX_CHUNKS, merged_offsets, result_slots
from elserve.chunking.text import Utf16Text

__all__ = [
    "MAX_CHUNKS",
    "ChunkOffset",
    "Chunker",
    "Utf16Text",
    "build_chunker",
    "chunk",
    "merged_offsets",
    "result_slots",
]
