"""Sparse vectors, and how Elasticsearch renders them as `{token: weight}`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import orjson


@dataclass(frozen=True, slots=True, eq=False)
class SparseVector:
    """Vocabulary ids and their weights: only weights > 0, highest first, ties by id ascending."""

    indices: np.ndarray  # int32
    weights: np.ndarray  # float32

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def sparsify(dense: np.ndarray) -> SparseVector:
    """The positive entries of one dense float32 vector, in Elasticsearch's order."""
    indices = np.flatnonzero(dense > 0)
    weights = dense[indices]
    # A stable sort of ascending ids by descending weight leaves equal weights in id order,
    # which is the order Elasticsearch's stable List.sort gives them.
    order = np.argsort(-weights, kind="stable")
    return SparseVector(indices[order].astype(np.int32), weights[order].astype(np.float32))


def token_name(token: str) -> str:
    """A vocabulary entry as Elasticsearch names it in results: every `.` becomes `__`, so that
    the name can be a `sparse_vector` / `rank_features` field key (`##` pieces stay as they are).

    Source: `TextExpansionProcessor.buildSanitizedVocabMap` in
    x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/nlp/TextExpansionProcessor.java
    (`token.replace(".", "__")`; its tests map ".d." to "__d__" and "##." to "##__").
    """
    return token.replace(".", "__")


class TokenNames:
    """A vocabulary's entries as results name them (`token_name`), built once per model."""

    def __init__(self, vocab: list[str]) -> None:
        names = [token_name(token) for token in vocab]
        self._names = np.array(names, dtype=object)
        counts = Counter(names)
        # Ids whose name another id has too (`a.b` and `a__b`): a JSON object holds a key once.
        self._shared = np.fromiter((counts[name] > 1 for name in names), dtype=bool, count=len(names))

    def of(self, indices: np.ndarray) -> tuple[list[str], bool]:
        """The names of these ids, and whether two of them may share one."""
        return self._names[indices].tolist(), bool(self._shared[indices].any())


def to_token_weights(vector: SparseVector, names: TokenNames) -> dict[str, float]:
    """`{token: weight}` in the vector's order, tokens named as Elasticsearch names them.

    Each weight is the float64 nearest the float32 weight's shortest decimal form, so JSON shows
    `0.53` as Elasticsearch does (it writes Java floats), not `0.5299999713897705`; it still
    converts back to the very same float32. Two ids can share a name after the rename (`a.b` and
    `a__b`); the first, heavier one is kept, since a JSON object holds a key once.
    """
    keys, shared = names.of(vector.indices)
    # orjson writes a float32 array in its shortest round-tripping decimals (ryu), and reads them
    # back as the nearest float64s: what float(str(weight)) gives, at C speed (a bulk response of
    # 16 passages took 3.5 ms in that Python loop, on the event loop every query waits for).
    weights = orjson.loads(orjson.dumps(np.ascontiguousarray(vector.weights), option=orjson.OPT_SERIALIZE_NUMPY))
    if not shared:
        return dict(zip(keys, weights, strict=True))
    rendered: dict[str, float] = {}
    for key, weight in zip(keys, weights, strict=True):
        rendered.setdefault(key, weight)
    return rendered


def unpack(vector: SparseVector) -> list[list[float]]:
    """`predicted_value` of one pass-through model's document: its rows of doubles (the vector holds
    the rows' shape in `indices` and their values in `weights`: `pass_through.pack`)."""
    rows, columns = (int(n) for n in vector.indices)
    return np.asarray(vector.weights, dtype=np.float64).reshape(rows, columns).tolist()
