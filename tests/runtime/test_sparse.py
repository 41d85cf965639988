"""Sparse vectors and their Elasticsearch rendering."""

from __future__ import annotations

import json

import numpy as np
import pytest

from elserve.runtime import SparseVector, TokenNames, sparsify, to_token_weights, token_name


def test_sparsify_keeps_positive_weights_highest_first() -> None:
    dense = np.array([0.0, 1.0, -0.5, 3.0, 4.0, 0.0, 1e-30, 3.0], dtype=np.float32)
    vector = sparsify(dense)
    assert vector.indices.tolist() == [4, 3, 7, 1, 6]  # ties (3.0) by id ascending
    assert vector.weights.tolist() == pytest.approx([4.0, 3.0, 3.0, 1.0, 1e-30])
    assert vector.indices.dtype == np.int32 and vector.weights.dtype == np.float32
    assert len(vector) == 5


def test_sparsify_of_nothing_positive_is_empty() -> None:
    vector = sparsify(np.array([0.0, -1.0, 0.0], dtype=np.float32))
    assert len(vector) == 0 and vector.indices.dtype == np.int32 and vector.weights.dtype == np.float32


def test_ties_are_in_id_order_over_many_entries() -> None:
    rng = np.random.default_rng(3)
    dense = rng.choice(np.array([0.0, 0.25, 0.5, 1.0], dtype=np.float32), size=5000)
    vector = sparsify(dense)
    keys = list(zip((-vector.weights).tolist(), vector.indices.tolist(), strict=True))
    assert keys == sorted(keys)
    assert set(vector.indices.tolist()) == set(np.flatnonzero(dense > 0).tolist())


@pytest.mark.parametrize(
    ("token", "name"),
    # The cases of TextExpansionProcessorTests (elastic/elasticsearch, x-pack/plugin/ml).
    [(".", "__"), (".d.", "__d__"), ("##.", "##__"), ("...", "______"), ("e.g", "e__g"), ("##s", "##s"), ("aa", "aa")],
)
def test_token_names_replace_every_dot(token: str, name: str) -> None:
    assert token_name(token) == name


def test_token_weights_render_like_elasticsearch() -> None:
    vocab = ["[PAD]", "aa", ".", "##.", "bb", "cc"]
    vector = SparseVector(np.array([3, 2, 5, 1], np.int32), np.array([5.0, 4.0, 0.53, 0.53], np.float32))
    rendered = to_token_weights(vector, TokenNames(vocab))
    assert list(rendered) == ["##__", "__", "cc", "aa"]
    # float32 0.53 is shown as Elasticsearch shows it, and still is the same float32.
    assert json.dumps(rendered) == '{"##__": 5.0, "__": 4.0, "cc": 0.53, "aa": 0.53}'
    assert np.float32(rendered["cc"]) == np.float32(0.53)


def test_names_that_collide_keep_the_heavier_entry() -> None:
    vocab = ["a.b", "a__b"]
    vector = SparseVector(np.array([1, 0], np.int32), np.array([2.0, 1.0], np.float32))
    assert to_token_weights(vector, TokenNames(vocab)) == {"a__b": 2.0}


def test_weights_are_the_shortest_decimals_of_their_float32s() -> None:
    # Every positive finite float32 pattern is fair game (the fast path must agree with str()).
    rng = np.random.default_rng(7)
    weights = np.concatenate(
        [
            rng.integers(1, 0x7F800000, size=20_000, dtype=np.uint32).view(np.float32),
            (rng.random(20_000) * 3).astype(np.float32),
            np.array([1e-45, 1e-10, 0.1, 0.3, 0.53, 1.0, 2.5, 9.999999, 99.99999, 3.4028235e38], np.float32),
        ]
    )
    vocab = [f"t{i}" for i in range(len(weights))]
    vector = SparseVector(np.arange(len(weights), dtype=np.int32), weights)
    rendered = to_token_weights(vector, TokenNames(vocab))
    assert list(rendered.values()) == [float(str(w)) for w in weights]
