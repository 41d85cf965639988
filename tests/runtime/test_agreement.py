"""The agreement an approximate backend states: top-k overlap and largest weight difference."""

from __future__ import annotations

import numpy as np
import pytest

from elserve.runtime import SparseVector
from elserve.runtime.agreement import agreement


def vec(pairs: dict[int, float]) -> SparseVector:
    """A vector in the encoder's order: highest weight first, ties by id."""
    items = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
    return SparseVector(np.array([k for k, _ in items], np.int32), np.array([w for _, w in items], np.float32))


def test_identical_vectors_agree_fully() -> None:
    v = [vec({1: 0.5, 7: 2.0, 3: 1.0}), vec({})]
    a = agreement(v, v)
    assert (a.texts, a.top_k, a.overlap_mean, a.overlap_min, a.max_abs_diff) == (2, 20, 1.0, 1.0, 0.0)


def test_overlap_counts_the_exact_top_k_found_in_the_other_top_k() -> None:
    exact = [vec({1: 4.0, 2: 3.0, 3: 2.0, 4: 1.0}), vec({1: 1.0, 2: 0.5})]
    # Text 0: the other's top-2 is {1, 4}: 1 of the exact top-2 {1, 2}. Text 1: same top-2.
    other = [vec({1: 4.0, 4: 3.5, 2: 3.0, 3: 2.0}), vec({2: 1.0, 1: 0.5})]
    a = agreement(exact, other, top_k=2)
    assert a.overlap_mean == pytest.approx(0.75) and a.overlap_min == pytest.approx(0.5)
    # Token 4 moved by 2.5, token 1 of text 1 by 0.5.
    assert a.max_abs_diff == pytest.approx(2.5)


def test_missing_tokens_count_as_zero_weight() -> None:
    a = agreement([vec({5: 0.25})], [vec({6: 0.75})])
    assert a.max_abs_diff == pytest.approx(0.75) and a.overlap_mean == 0.0


def test_an_empty_exact_vector_has_nothing_to_miss() -> None:
    a = agreement([vec({})], [vec({3: 0.1})])
    assert a.overlap_mean == 1.0 and a.max_abs_diff == pytest.approx(0.1)


def test_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="1 exact vectors against 0 others"):
        agreement([vec({})], [])
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        agreement([], [], top_k=0)
    assert agreement([], []).overlap_mean == 1.0
