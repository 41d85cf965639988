"""At most 512 chunks per input: Elasticsearch's `EmbeddingRequestChunker` slots and merge."""

from __future__ import annotations

from elserve.chunking import MAX_CHUNKS, ChunkOffset, merged_offsets, result_slots


def test_up_to_512_chunks_keep_their_own_slot() -> None:
    assert result_slots(0) == []
    assert result_slots(512) == list(range(512))


def test_more_chunks_share_slots_evenly_in_order() -> None:
    slots = result_slots(1030)
    assert slots[0] == 0 and slots[-1] == MAX_CHUNKS - 1
    assert sorted(slots) == slots and set(slots) == set(range(MAX_CHUNKS))
    assert {slots.count(s) for s in range(MAX_CHUNKS)} == {2, 3}
    # Chunk i goes to i * 512 // n (integer arithmetic, as Java's int division).
    assert slots[1029] == 1029 * 512 // 1030 and slots[3] == 1


def test_a_slot_spans_its_chunks() -> None:
    chunks = [ChunkOffset(0, 5), ChunkOffset(3, 9), ChunkOffset(9, 12)]
    assert merged_offsets(chunks, [0, 0, 1]) == [ChunkOffset(0, 9), ChunkOffset(9, 12)]
