"""How close two runners' vectors are: the proof that the rows of a run compute the same thing.

The measure is the runtime's own (`elserve.runtime.agreement`: top-k overlap and the largest
weight difference), which the bf16 backend states too; this module only adapts the rows.
"""

from __future__ import annotations

import numpy as np

from elserve.bench.results import Agreement, SparseRow
from elserve.runtime import SparseVector, token_name
from elserve.runtime.agreement import agreement

TOP_K = 20


def compare(reference: list[SparseRow], other: list[SparseRow], top_k: int = TOP_K) -> Agreement:
    """Largest weight difference over every token of either vector, and the share of the
    reference's top-`top_k` tokens that `other` also ranks in its top-`top_k`. Rows are keyed
    by vocabulary id (see `rows_by_id` for `{token: weight}` rows)."""
    if len(reference) != len(other):
        raise ValueError(f"{len(reference)} reference vectors against {len(other)}")
    found = agreement([_vector(r) for r in reference], [_vector(r) for r in other], top_k)
    return Agreement(found.texts, found.max_abs_diff, found.top_k, found.overlap_mean, found.overlap_min)


def rows_by_id(rows: list[SparseRow], vocab: list[str]) -> list[SparseRow]:
    """`{token: weight}` rows, as the HTTP API renders them, keyed by vocabulary id again.

    A rendered name stands for the first id with that name, as `to_token_weights` keeps it."""
    ids: dict[str, int] = {}
    for token_id, token in enumerate(vocab):
        ids.setdefault(token_name(token), token_id)
    return [{ids[str(name)]: weight for name, weight in row.items()} for row in rows]


def _vector(row: SparseRow) -> SparseVector:
    # Weight descending, ties by id: the order the runtime's vectors have.
    ordered = sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))
    return SparseVector(
        np.array([k for k, _ in ordered], dtype=np.int32), np.array([w for _, w in ordered], dtype=np.float32)
    )
