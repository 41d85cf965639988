"""Merging the embeddings of chunks that share a result (more than 512 chunks per input)."""

from __future__ import annotations

import numpy as np

from elserve.operations.chunked_inference import merge_vectors
from elserve.runtime import SparseVector


def vector(pairs: dict[int, float]) -> SparseVector:
    order = sorted(pairs, key=lambda k: (-pairs[k], k))
    return SparseVector(np.array(order, dtype=np.int32), np.array([pairs[k] for k in order], dtype=np.float32))


def test_merge_keeps_every_token_at_its_highest_weight() -> None:
    merged = merge_vectors([vector({1: 0.5, 2: 2.0, 7: 0.25}), vector({2: 1.0, 3: 0.5, 7: 3.0})])
    assert merged.indices.tolist() == [7, 2, 1, 3]  # by weight, ids ascending among equals
    assert merged.weights.tolist() == [3.0, 2.0, 0.5, 0.5]
    single = vector({4: 1.0})
    assert merge_vectors([single]) is single
