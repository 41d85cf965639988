"""At most 512 chunks per input: more are merged into neighbours, as `EmbeddingRequestChunker` does.

Every chunk is still embedded; chunk `i` of `n > 512` lands in result slot
`i * 512 // n`, so each slot holds a run of neighbouring chunks. A slot's offset
runs from its first chunk's start to its last chunk's end; its embedding is the
union of its chunks' tokens with the highest weight of each (`SparseEmbeddingResults.Embedding.merge`).
"""

from __future__ import annotations

from elserve.chunking.chunker import ChunkOffset

MAX_CHUNKS = 512  # EmbeddingRequestChunker.MAX_CHUNKS


def result_slots(chunk_count: int, max_chunks: int = MAX_CHUNKS) -> list[int]:
    """The result slot of each chunk (the identity when there are at most `max_chunks`)."""
    if chunk_count <= max_chunks:
        return list(range(chunk_count))
    return [index * max_chunks // chunk_count for index in range(chunk_count)]


def merged_offsets(chunks: list[ChunkOffset], slots: list[int]) -> list[ChunkOffset]:
    """One offset per slot: the first chunk's start to the last chunk's end."""
    merged: list[ChunkOffset] = []
    for chunk, slot in zip(chunks, slots, strict=True):
        if slot == len(merged):
            merged.append(chunk)
        else:
            merged[slot] = ChunkOffset(merged[slot].start, chunk.end)
    return merged
