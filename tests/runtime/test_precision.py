"""The opt-in bf16 backend: what it runs, and the agreement it states on the real model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from elserve.runtime import Encoder
from elserve.runtime.agreement import agreement
from elserve.runtime.cpu import bf16_refusal
from tests.runtime.texts import VARIED_TEXTS


@pytest.fixture(scope="module")
def bf16_encoder(splade_model_dir: Path) -> Encoder:
    # Without native bfloat16 the encoder refuses bf16 (tests/runtime/test_cpu.py checks the refusal).
    if (refusal := bf16_refusal()) is not None:
        pytest.skip(refusal)
    return Encoder.load(splade_model_dir, precision="bf16")


def test_default_is_exact_and_bf16_is_opt_in(splade_encoder: Encoder, bf16_encoder: Encoder) -> None:
    assert splade_encoder.precision == "exact"
    assert bf16_encoder.precision == "bf16"
    assert bf16_encoder._layers.layers[0].qkv.weight.dtype == torch.bfloat16
    # The exact model is left in fp32 (the bf16 layers are a copy).
    assert bf16_encoder.model.layers[0].qkv.weight.dtype == torch.float32


def test_unknown_precision_is_refused(splade_model_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"precision must be one of \['exact', 'bf16', 'int8'\], got \[fp16\]"):
        Encoder.load(splade_model_dir, precision="fp16")


def test_bf16_agrees_with_exact(splade_encoder: Encoder, bf16_encoder: Encoder) -> None:
    exact = [v for v, _ in splade_encoder.encode(VARIED_TEXTS)]
    approx = [v for v, _ in bf16_encoder.encode(VARIED_TEXTS)]
    a = agreement(exact, approx)
    # Measured: mean 0.995 on the first 500 texts of the benchmark corpus, max |diff| 0.083.
    assert a.overlap_mean >= 0.95
    assert a.max_abs_diff < 0.25
    assert a.max_abs_diff > 0  # it is an approximation: the test would hide a silent fallback
