"""How close two runners' vectors are: the proof that the rows of a run compute the same thing."""

from __future__ import annotations

from elserve.bench.results import Agreement, SparseRow

TOP_K = 20


def compare(reference: list[SparseRow], other: list[SparseRow], top_k: int = TOP_K) -> Agreement:
    """Largest weight difference over every token of either vector, and the share of the
    reference's top-`top_k` tokens that `other` also ranks in its top-`top_k`."""
    if len(reference) != len(other):
        raise ValueError(f"{len(reference)} reference vectors against {len(other)}")
    max_diff = 0.0
    overlaps: list[float] = []
    for ref, got in zip(reference, other, strict=True):
        for key in ref.keys() | got.keys():
            max_diff = max(max_diff, abs(ref.get(key, 0.0) - got.get(key, 0.0)))  # type: ignore[arg-type]
        best_ref, best_got = _top(ref, top_k), _top(got, top_k)
        if best_ref:
            overlaps.append(len(best_ref & best_got) / len(best_ref))
    return Agreement(
        texts=len(reference),
        max_abs_diff=max_diff,
        top_k=top_k,
        overlap_mean=sum(overlaps) / len(overlaps) if overlaps else 1.0,
        overlap_min=min(overlaps, default=1.0),
    )


def _top(row: SparseRow, k: int) -> set:
    # Highest weight first; ties by key so equal weights give the same set either side.
    return {key for key, _ in sorted(row.items(), key=lambda kv: (-kv[1], str(kv[0])))[:k]}
