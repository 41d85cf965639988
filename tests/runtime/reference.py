"""The reference SPLADE computation (transformers' BertForMaskedLM + torch) and the comparison."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from elserve.runtime import SparseVector


def reference_model(model_dir: Path) -> torch.nn.Module:
    """transformers' BertForMaskedLM of `model_dir`, checked to hold every checkpoint weight
    (none randomly initialised)."""
    from transformers import AutoModelForMaskedLM

    model, info = AutoModelForMaskedLM.from_pretrained(model_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"] and not info["error_msgs"], info
    return model.eval()


def reference_weights(model: torch.nn.Module, batch: list[np.ndarray]) -> np.ndarray:
    """The reference SPLADE computation on a padded batch: `(texts, vocab)`."""
    longest = max(len(ids) for ids in batch)
    input_ids = torch.zeros(len(batch), longest, dtype=torch.long)
    attention_mask = torch.zeros(len(batch), longest, dtype=torch.long)
    for i, ids in enumerate(batch):
        input_ids[i, : len(ids)] = torch.from_numpy(ids.astype(np.int64))
        attention_mask[i, : len(ids)] = 1
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        weights = torch.max(torch.log1p(torch.relu(logits)) * attention_mask.unsqueeze(-1), dim=1).values
    return weights.numpy()


def fp32_rounding(reference: torch.Tensor, reduction: int, layers: int = 1) -> float:
    """The absolute tolerance between two fp32 computations of `reference` that add up in different
    orders (another kernel, ISA or thread count). Rounding in a sum of `reduction` terms grows about
    as sqrt(reduction) machine epsilons of the largest magnitude, and again with each layer it
    passes through; the factor 4 covers the tail. A wrong weight or a missing term is orders of
    magnitude above it."""
    eps = torch.finfo(torch.float32).eps
    return 4 * layers * math.sqrt(reduction) * eps * float(reference.abs().max())


def dense(vector: SparseVector, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.float32)
    out[vector.indices] = vector.weights
    return out


def assert_matches_reference(vector: SparseVector, expected: np.ndarray, atol: float = 1e-4) -> None:
    """Every weight within `atol`; the same non-zero set, except entries within 1e-6 of zero."""
    got = dense(vector, expected.shape[0])
    worst = float(np.abs(got - expected).max())
    assert worst <= atol, f"largest difference {worst}"
    differ = (got > 0) != (expected > 0)
    assert np.all(np.maximum(got, expected)[differ] <= 1e-6), np.flatnonzero(differ)
