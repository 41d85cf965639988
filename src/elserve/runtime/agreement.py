"""How far an approximate backend's vectors are from the exact ones: the numbers it states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from elserve.runtime.sparse import SparseVector

TOP_K = 20


@dataclass(frozen=True, slots=True)
class Agreement:
    texts: int
    top_k: int
    # Per text, the share of the exact vector's top-k tokens that the other's top-k holds too.
    overlap_mean: float
    overlap_min: float
    # The largest |exact - other| over every token of either vector (absent counts as 0).
    max_abs_diff: float


def agreement(exact: Sequence[SparseVector], other: Sequence[SparseVector], top_k: int = TOP_K) -> Agreement:
    """Compare vectors text by text. A text whose exact vector is empty counts as full overlap
    (nothing to miss), its weight difference still counts."""
    if len(exact) != len(other):
        raise ValueError(f"{len(exact)} exact vectors against {len(other)} others")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got [{top_k}]")
    overlaps: list[float] = []
    worst = 0.0
    for want, got in zip(exact, other, strict=True):
        # Vectors are sorted by weight (ties by id): the top-k are the first k entries.
        best_want, best_got = want.indices[:top_k], got.indices[:top_k]
        overlaps.append(len(np.intersect1d(best_want, best_got)) / len(best_want) if len(best_want) else 1.0)
        ids = np.union1d(want.indices, got.indices)
        if len(ids):
            worst = max(worst, float(np.abs(_dense(want, ids) - _dense(got, ids)).max()))
    return Agreement(
        texts=len(exact),
        top_k=top_k,
        overlap_mean=float(np.mean(overlaps)) if overlaps else 1.0,
        overlap_min=min(overlaps, default=1.0),
        max_abs_diff=worst,
    )


def _dense(vector: SparseVector, ids: np.ndarray) -> np.ndarray:
    """The vector's weights at the sorted `ids` (0 where it has none), in float64."""
    out = np.zeros(len(ids), dtype=np.float64)
    out[np.searchsorted(ids, vector.indices)] = vector.weights
    return out
