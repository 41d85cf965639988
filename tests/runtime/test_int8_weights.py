"""The int8 layers' weights: their grid, and GPTQ's rounding onto it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from elserve.bench.base_model import bert_init
from elserve.runtime import Encoder
from elserve.runtime.bert import LAYER_LINEARS, load_bert
from elserve.runtime.int8 import OneDnnLinear, gptq_rows, int8_layers, kernel_of
from elserve.runtime.int8_weights import (
    BLOCK,
    DAMPING,
    LEVELS,
    input_moments,
    nearest_rows,
    rounded,
    row_scales,
)
from tests.support.model_factory import build_bert_dir


def _correlated_inputs(rows: int, width: int, seed: int) -> torch.Tensor:
    """Inputs whose features are mixed, as hidden states' are: GPTQ gains where they correlate."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(width, width, generator=generator) / width**0.5
    return torch.randn(rows, width, generator=generator) @ (torch.eye(width) + 2 * mixing)


def _gptq_as_published(weight: torch.Tensor, moment: torch.Tensor) -> torch.Tensor:
    """GPTQ's rounding as its paper writes it (float64, one column at a time, no blocks): the
    upper Cholesky factor U of H⁻¹, and each column's error divided by Uⱼⱼ and spread by row j."""
    h = moment.double()
    h = h + DAMPING * float(h.diagonal().mean()) * torch.eye(h.shape[0], dtype=h.dtype)
    u = torch.linalg.cholesky(torch.linalg.inv(h), upper=True)
    w = (weight / row_scales(weight)[:, None]).double().clone()
    q = torch.empty_like(w)
    for j in range(w.shape[1]):
        q[:, j] = w[:, j].round().clamp(-LEVELS, LEVELS)
        error = (w[:, j] - q[:, j]) / u[j, j]
        w[:, j + 1 :] -= error[:, None] * u[j, j + 1 :][None, :]
    return q.to(torch.int8)


@pytest.mark.parametrize("width", [1, 5, BLOCK, BLOCK + 1, 3 * BLOCK + 7])
def test_the_rounding_is_gptqs_as_published(width: int) -> None:
    """`rounded` takes the factor of H rather than of H⁻¹ and works in blocks: the same steps.
    A weight that lands within float32's rounding of a half step may go the other way."""
    weight = torch.randn(16, width, generator=torch.Generator().manual_seed(width))
    inputs = _correlated_inputs(2 * width + 8, width, seed=width)
    moment = inputs.T @ inputs
    got, want = rounded(weight, moment), _gptq_as_published(weight, moment)
    assert int((got.int() - want.int()).abs().max()) <= 1
    assert float((got != want).float().mean()) <= 0.002


def test_weights_land_on_their_grid() -> None:
    weight = torch.randn(6, 40, generator=torch.Generator().manual_seed(0))
    weight[2] = 0  # a row of zeros keeps a usable scale
    near = nearest_rows(weight)
    assert near.dtype == torch.int8 and int(near.abs().max()) == LEVELS
    assert torch.equal(near[2], torch.zeros(40, dtype=torch.int8))
    # Each row's largest magnitude is its outermost step, and the rest within half a step.
    scales = row_scales(weight)
    assert torch.equal(near.abs().amax(dim=1)[[0, 1, 3, 4, 5]], torch.full((5,), LEVELS, dtype=torch.int8))
    assert float((near.float() * scales[:, None] - weight).abs().div(scales[:, None]).max()) <= 0.5 + 1e-6


def test_uncorrelated_inputs_leave_nothing_to_make_up_so_gptq_rounds_to_nearest() -> None:
    """With `XᵀX` diagonal, no column's error can be made up by another's: GPTQ is nearest rounding."""
    weight = torch.randn(16, 48, generator=torch.Generator().manual_seed(1))
    moment = torch.diag(torch.rand(48, generator=torch.Generator().manual_seed(2)) + 0.5)
    assert torch.equal(rounded(weight, moment), nearest_rows(weight))


def test_gptq_rows_change_the_outputs_less_than_nearest_rounding() -> None:
    """GPTQ's promise, on inputs like the ones it was measured on (held out): the linear's outputs
    move less than with each weight at its nearest step, on the same grid."""
    width, outputs = 96, 32
    weight = torch.randn(outputs, width, generator=torch.Generator().manual_seed(3))
    inputs = _correlated_inputs(768, width, seed=4)  # one mixing of the features, rows apart
    seen, held_out = inputs[:512], inputs[512:]
    scales = row_scales(weight)[:, None]
    gptq = rounded(weight, seen.T @ seen)
    assert gptq.dtype == torch.int8 and int(gptq.abs().max()) <= LEVELS

    def output_error(rows: torch.Tensor) -> float:
        return float((held_out @ (rows.float() * scales - weight).T).norm())

    assert output_error(gptq) < 0.85 * output_error(nearest_rows(weight))  # 0.72-0.75 for three weights


def test_a_models_gptq_rows_bring_its_int8_layers_closer_to_exact(tmp_path: Path) -> None:
    """Through the encoder layers as int8 runs them (oneDNN's kernel, at its activation width here), on texts other
    than the random sample the rows were measured on."""
    model = load_bert(build_bert_dir(tmp_path, layers=2, hidden=256, heads=4, max_positions=128, init=bert_init(256)))
    vocab = model.config.vocab_size
    rows = gptq_rows(model, vocab)
    assert set(rows) == {(i, name) for i in range(2) for name in LAYER_LINEARS}
    for (index, name), got in rows.items():
        assert got.shape == getattr(model.layers[index], name).weight.shape and got.dtype == torch.int8
    lengths = torch.tensor([1, 60, 23, 90])
    ids = torch.randint(5, vocab, (int(lengths.sum()),), generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        want = model.encode_packed(ids, lengths)
        errors = {
            label: float((layers.encode_packed(ids, lengths) - want).norm() / want.norm())
            for label, layers in (
                ("nearest", int8_layers(model, kernel=OneDnnLinear)),
                ("gptq", int8_layers(model, kernel=OneDnnLinear, rows=rows)),
            )
        }
    assert 0 < errors["gptq"] < errors["nearest"]


def test_moments_are_measured_on_plain_linears_only(tmp_path: Path) -> None:
    model = load_bert(build_bert_dir(tmp_path, layers=1, hidden=64, heads=4))
    lengths = torch.tensor([5, 3])
    ids = torch.randint(5, model.config.vocab_size, (8,), generator=torch.Generator().manual_seed(0))
    moments = input_moments(model, ids, lengths)
    hidden = model.config.hidden_size
    assert moments[0, "qkv"].shape == (hidden, hidden)
    assert moments[0, "output"].shape == (model.config.intermediate_size, model.config.intermediate_size)
    with pytest.raises(ValueError, match="plain fp32 linears"):
        input_moments(int8_layers(model, kernel=OneDnnLinear), ids, lengths)


def test_the_encoder_runs_int8_layers_with_gptq_rows(tmp_path: Path) -> None:
    """The copies an int8 encoder keeps are built with GPTQ's rows (timed first with nearest ones:
    the rounding changes no time)."""
    model_dir = build_bert_dir(tmp_path, layers=1, hidden=768, heads=12, intermediate=3072, init=bert_init(768))
    try:
        encoder = Encoder.load(model_dir, num_threads=1, precision="int8")
    except ValueError as e:  # a CPU where int8 does not pay (tests/runtime/test_int8.py)
        pytest.skip(str(e))
    assert isinstance(encoder, Encoder)
    model, scored = encoder.model, len(encoder.tokenizer.vocab)
    lengths = torch.tensor([3, 40])
    ids = torch.randint(5, scored, (43,), generator=torch.Generator().manual_seed(3))
    rows = gptq_rows(model, scored)
    with torch.inference_mode():
        for layers in (encoder._layers, encoder._short_layers):
            kernel = type(kernel_of(layers))
            got = layers.encode_packed(ids, lengths)
            assert torch.equal(got, int8_layers(model, kernel=kernel, rows=rows).encode_packed(ids, lengths))
            assert not torch.equal(got, int8_layers(model, kernel=kernel).encode_packed(ids, lengths))


def test_inputs_that_never_vary_leave_the_weights_at_their_nearest_steps() -> None:
    """All-zero inputs (`XᵀX` zero): nothing to weigh errors by, and no failing factorization."""
    weight = torch.randn(8, 24, generator=torch.Generator().manual_seed(6))
    assert torch.equal(rounded(weight, torch.zeros(24, 24)), nearest_rows(weight))
