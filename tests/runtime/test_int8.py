"""The opt-in int8 layers: refused where they do not pay, and the fidelity they state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from elserve.bench.base_model import bert_init
from elserve.runtime import Encoder, SparseVector
from elserve.runtime.agreement import fidelity, held_out_queries, ranking_agreement
from elserve.runtime.bert import load_bert
from elserve.runtime.int8 import (
    Int8Linear,
    checked_int8_layers,
    int8_layers,
    int8_refusal,
    machine_int8_refusal,
)
from tests.runtime.texts import VARIED_TEXTS
from tests.support.model_factory import build_bert_dir


def test_int8_is_refused_unless_clearly_faster() -> None:
    assert int8_refusal(exact_seconds=0.010, int8_seconds=0.004) is None
    refusal = int8_refusal(exact_seconds=0.010, int8_seconds=0.0095)
    assert refusal is not None
    assert "precision [int8] is not faster than [exact] on this CPU" in refusal
    assert "9.5 ms in int8 against 10.0 ms in fp32" in refusal and "use precision [exact]" in refusal


def test_a_model_whose_int8_layers_are_slower_is_refused_at_load(tmp_path: Path) -> None:
    """The lesser path, by an injected measurement (a CPU without a fast int8 product)."""
    model = load_bert(build_bert_dir(tmp_path, layers=1, hidden=64, heads=4))

    def int8_slower(layers: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> float:
        return 0.003 if isinstance(layers.layers[0].query, Int8Linear) else 0.002

    with pytest.raises(
        ValueError, match=r"precision \[int8\] is not faster than \[exact\].*3\.0 ms in int8 against 2\.0 ms"
    ):
        checked_int8_layers(model, model, model.config.vocab_size, seconds=int8_slower)
    kept = checked_int8_layers(
        model, model, model.config.vocab_size, seconds=lambda layers, *_: 1.0 if layers is model else 0.1
    )
    assert isinstance(kept.layers[0].output, Int8Linear)
    assert isinstance(model.layers[0].output, torch.nn.Linear)  # the exact model is left as it was
    assert kept.embeddings.word.weight is model.embeddings.word.weight  # shared, not copied
    assert machine_int8_refusal(seconds=lambda module, rows: 0.003 if isinstance(module, Int8Linear) else 0.002)
    assert machine_int8_refusal(seconds=lambda module, rows: 0.001 if isinstance(module, Int8Linear) else 0.002) is None


def test_int8_layers_stay_close_to_fp32(tmp_path: Path) -> None:
    model = load_bert(build_bert_dir(tmp_path, layers=2, hidden=256, heads=4, init=bert_init(256)))
    quantized = int8_layers(model)
    lengths = torch.tensor([1, 30, 17])
    ids = torch.randint(5, model.config.vocab_size, (int(lengths.sum()),), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        want = model.transform(model.encode_packed(ids, lengths))
        got = quantized.transform(quantized.encode_packed(ids, lengths))
    relative = float((got - want).norm() / want.norm())
    assert 0 < relative < 0.05  # an approximation, and a close one


def test_ranking_agreement_counts_shared_top_passages() -> None:
    def v(pairs: dict[int, float]) -> SparseVector:
        ordered = sorted(pairs.items(), key=lambda kv: -kv[1])
        return SparseVector(np.array([k for k, _ in ordered], np.int32), np.array([w for _, w in ordered], np.float32))

    passages = [v({i: 1.0, 100: i / 10}) for i in range(12)]
    queries = [v({100: 1.0})]
    assert ranking_agreement(passages, queries, passages, queries) == (1.0, 1.0)
    # The other encoder swaps the best passage for the worst: 9 of the top 10 still shared.
    swapped = passages[:11] + [v({11: 1.0, 100: 0.0})]
    swapped[0] = v({0: 1.0, 100: 1.15})
    assert ranking_agreement(passages, queries, swapped, queries) == (0.9, 0.9)


def test_int8_fidelity_by_the_benchmarks_measurement(tmp_path: Path) -> None:
    """A test-sized run of what `elserve bench` states for int8: top-20 overlap, largest weight
    difference, top-10 ranking agreement of passages against held-out queries."""
    model_dir = build_bert_dir(tmp_path, layers=1, hidden=768, heads=12, intermediate=3072, init=bert_init(768))
    exact = Encoder.load(model_dir, num_threads=1)
    try:
        approx = Encoder.load(model_dir, num_threads=1, precision="int8")
    except ValueError as e:  # a CPU where int8 does not pay (the refusal is tested above)
        pytest.skip(str(e))
    assert approx.kernels["layers"] == "int8"
    passages, queries = held_out_queries([t for t in VARIED_TEXTS if t.strip()], 20)
    found = fidelity(exact, approx, passages, queries)
    assert found.passages.texts == len(passages) and found.queries == 20 and found.rank_k == 10
    assert 0 < found.passages.max_abs_diff < 0.5
    assert found.passages.overlap_mean >= 0.8
    assert 0.5 <= found.ranking_mean <= 1.0 and found.ranking_min <= found.ranking_mean
