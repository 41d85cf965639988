"""The unpadded encoder (texts' real tokens concatenated) against the padded one, the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from elserve.bench.base_model import bert_init
from elserve.runtime import Encoder
from elserve.runtime.attention import KERNELS
from elserve.runtime.bert import BertMaskedLM, length_runs, load_bert, positions_of
from tests.runtime.reference import dense
from tests.support.model_factory import build_bert_dir

# Mixed lengths, the shortest and longest a text can have, equal lengths side by side (one run
# of attention), and a single text.
LENGTH_SETS = [
    [1, 512, 37, 5, 200, 1, 64],
    [3, 8, 8, 8, 20, 20, 511],
    [512],
    [1],
]


def test_length_runs_group_consecutive_equal_lengths() -> None:
    assert length_runs(torch.tensor([3, 3, 5, 3, 1, 1])) == [(0, 2, 3), (6, 1, 5), (11, 1, 3), (14, 2, 1)]
    assert length_runs(torch.tensor([7])) == [(0, 1, 7)]
    assert positions_of(torch.tensor([2, 3, 1])).tolist() == [0, 1, 0, 1, 2, 0]


def _padded_and_packed(model: BertMaskedLM, lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The head-transformed rows of random texts of `lengths`, padded then unpadded."""
    generator = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths)
    ids = torch.randint(5, model.config.vocab_size, (len(lengths), max(lengths)), generator=generator)
    real = torch.arange(max(lengths)) < lengths_t[:, None]
    ids[~real] = model.config.pad_token_id
    with torch.inference_mode():
        padded = model.transform(model.encode(ids, lengths_t))[real]
        packed = model.transform(model.encode_packed(ids[real], lengths_t))
    return padded, packed


def _check(model: BertMaskedLM) -> None:
    for seed, lengths in enumerate(LENGTH_SETS):
        for layers in (model, model.with_packed_linears()):
            for attention in KERNELS:
                layers.attention = attention
                want, got = _padded_and_packed(layers, lengths, seed)
                scale = max(1.0, float(want.abs().max()))
                assert float((got - want).abs().max()) <= 1e-4 * scale, (lengths, attention)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_attention_kernels_agree(dtype: torch.dtype) -> None:
    """Runs of one and several texts, lengths 1 to 512: the fused kernel and the plain products
    within the dtype's rounding of each other."""
    runs = [(0, 1, 1), (1, 3, 8), (25, 1, 512), (537, 2, 40)]
    rows = 617
    q, k, v = torch.randn(rows, 3 * 64, generator=torch.Generator().manual_seed(0)).to(dtype).split(64, dim=-1)
    with torch.inference_mode():
        fused, products = (KERNELS[name](q, k, v, 4, runs).float() for name in ("fused", "products"))
    tolerance = 1e-5 if dtype == torch.float32 else 3e-2
    assert float((fused - products).abs().max()) <= tolerance
    # Each text attends to its own rows only: a text alone gives what it gives in the batch.
    with torch.inference_mode():
        alone = KERNELS["fused"](q[537:577], k[537:577], v[537:577], 4, [(0, 1, 40)]).float()
    assert float((alone - fused[537:577]).abs().max()) <= 1e-6


def test_the_encoder_runs_the_attention_it_timed(tmp_path: Path) -> None:
    encoder = Encoder.load(build_bert_dir(tmp_path, layers=2, hidden=64, heads=4, max_positions=512), num_threads=1)
    assert encoder.kernels["attention"] in KERNELS
    assert encoder.model.attention == encoder.kernels["attention"]


def test_unpadded_rows_match_padded(tmp_path: Path) -> None:
    # hidden 256 with a 256 x 1024 feed-forward: packed linears on this CPU where oneDNN has them.
    _check(load_bert(build_bert_dir(tmp_path, layers=2, hidden=256, heads=4, intermediate=1024, max_positions=512)))


@pytest.mark.slow
def test_unpadded_rows_match_padded_at_bert_base(tmp_path: Path) -> None:
    shape = {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072, "max_positions": 512}
    _check(load_bert(build_bert_dir(tmp_path, **shape, init=bert_init(768))))


def test_a_text_gets_the_same_vector_whatever_batch_it_rides_in(tmp_path: Path) -> None:
    """Unpadded, a batch's mix of lengths changes nothing but rounding: each text alone, and the
    whole batch at once, in both orders."""
    encoder = Encoder.load(build_bert_dir(tmp_path, layers=2, hidden=64, heads=4, max_positions=512), num_threads=2)
    rng = np.random.default_rng(3)
    batch = [rng.integers(5, len(encoder.vocab), size=n) for n in (1, 512, 40, 40, 7, 300)]
    size = len(encoder.vocab)
    alone = [dense(encoder.encode_ids([ids])[0], size) for ids in batch]
    for order in (list(range(len(batch))), list(reversed(range(len(batch))))):
        together = encoder.encode_ids([batch[i] for i in order])
        for i, vector in zip(order, together, strict=True):
            scale = max(1.0, float(alone[i].max()))
            assert float(np.abs(dense(vector, size) - alone[i]).max()) <= 1e-4 * scale
