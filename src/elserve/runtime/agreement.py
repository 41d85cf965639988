"""How far an approximate backend's vectors are from the exact ones: the numbers it states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

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


RANK_K = 10


@dataclass(frozen=True, slots=True)
class Fidelity:
    """What an approximate encoder states against `exact`: its vectors' agreement on the passages,
    and how it ranks them for held-out queries."""

    passages: Agreement
    queries: int
    rank_k: int
    # Per query, the share of exact's top-`rank_k` passages that the other's top-`rank_k` holds too.
    ranking_mean: float
    ranking_min: float


def ranking_agreement(
    exact_passages: Sequence[SparseVector],
    exact_queries: Sequence[SparseVector],
    other_passages: Sequence[SparseVector],
    other_queries: Sequence[SparseVector],
    k: int = RANK_K,
) -> tuple[float, float]:
    """Mean and lowest share of exact's top-`k` passages per query (by sparse dot product, as a
    `sparse_vector` query scores) that the other encoder's top-`k` holds too."""
    want, got = _top(exact_passages, exact_queries, k), _top(other_passages, other_queries, k)
    shares = [len(set(w) & set(g)) / len(w) for w, g in zip(want, got, strict=True)]
    return (float(np.mean(shares)), min(shares)) if shares else (1.0, 1.0)


def _top(passages: Sequence[SparseVector], queries: Sequence[SparseVector], k: int) -> list[list[int]]:
    size = 1 + max((int(v.indices.max()) for v in (*passages, *queries) if len(v.indices)), default=0)
    matrix = np.zeros((len(passages), size), dtype=np.float64)
    for row, vector in zip(matrix, passages, strict=True):
        row[vector.indices] = vector.weights
    tops = []
    for query in queries:
        scores = matrix[:, query.indices] @ query.weights.astype(np.float64)
        # Highest score first, ties by passage order (stable).
        tops.append(np.argsort(-scores, kind="stable")[:k].tolist())
    return tops


class _Encodes(Protocol):
    def encode(self, texts: list[str]) -> list[tuple[SparseVector, bool]]: ...


def fidelity(exact: _Encodes, other: _Encodes, passages: list[str], queries: list[str]) -> Fidelity:
    """`other` against `exact` on `passages` (top-`TOP_K` token overlap, largest weight difference)
    and on ranking them for `queries` (held out: not among the passages)."""
    encoded = {
        name: ([v for v, _ in encoder.encode(passages)], [v for v, _ in encoder.encode(queries)])
        for name, encoder in (("exact", exact), ("other", other))
    }
    (want_p, want_q), (got_p, got_q) = encoded["exact"], encoded["other"]
    mean, lowest = ranking_agreement(want_p, want_q, got_p, got_q)
    return Fidelity(agreement(want_p, got_p), len(queries), RANK_K, mean, lowest)


def held_out_queries(texts: list[str], count: int, words: int = 12) -> tuple[list[str], list[str]]:
    """`(passages, queries)`: the last `count` texts held out, each cut to its first `words` words
    as a query; the rest are the passages they are scored against."""
    if not 0 < count < len(texts):
        raise ValueError(f"need fewer than {len(texts)} queries and at least one, got [{count}]")
    return texts[:-count], [" ".join(text.split()[:words]) for text in texts[-count:]]
