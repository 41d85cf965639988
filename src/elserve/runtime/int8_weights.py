"""The int8 layers' weights: their grid, one symmetric scale per output row (`row_scales`), and
where on it each weight lands, rounded so that each rounding error is made up by the weights after
it (GPTQ: Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
Transformers", 2022) rather than each to its nearest step (`nearest_rows`).

Rounding every weight to its nearest step leaves errors that add up along each output's dot
product. GPTQ rounds a linear's weights one input column at a time and moves each column's error
onto the columns not yet rounded, in the proportions that least change the linear's outputs on
typical inputs: those of the inverse of the inputs' second moments, `H = XᵀX`, measured here on
one run of the exact model. The grid is the same, and so are the kernels and their speed: only
the step each weight lands on changes. It costs time at load: at BERT-base, ~13 s of one thread.

The sample int8 measures them on (`int8.gptq_rows`) is the model's own tokens drawn at random,
so it needs no text that a model might not know. Measured on 2026-12-07 (docs/performance.md): on
BERT-base's shape (random weights), 8 random texts did as well as 64 corpus passages, and int8
kept 0.974 of exact's top-20 tokens against 0.963 rounded to nearest (its top-10 ranking 0.984
against 0.968). On the real SPLADE-tiny, whose error is its activations' rounding, it changed
nothing beyond the noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from elserve.runtime.bert import LAYER_LINEARS, BertMaskedLM

# Added to `H`'s diagonal, as a share of its mean: GPTQ's own value. It keeps `H` invertible where
# an input never varies, and bounds how far one error is spread.
DAMPING = 0.01
# Columns rounded in one block before the rest are updated at once (a product, not a loop): GPTQ's.
BLOCK = 128
# int8's symmetric range: the grid's outermost step on either side.
LEVELS = 127

Linear = tuple[int, str]  # (layer index, name of `LAYER_LINEARS`)


def row_scales(weight: torch.Tensor) -> torch.Tensor:
    """A symmetric scale per output row of `weight`: its largest magnitude at the outermost step."""
    return (weight.abs().amax(dim=1) / LEVELS).clamp_min(torch.finfo(torch.float32).tiny)


def nearest_rows(weight: torch.Tensor) -> torch.Tensor:
    """`weight` as int8 rows on its grid, each weight rounded to its nearest step."""
    return torch.round(weight / row_scales(weight)[:, None]).clamp(-LEVELS, LEVELS).to(torch.int8)


def compensated_rows(model: BertMaskedLM, ids: torch.Tensor, lengths: torch.Tensor) -> dict[Linear, torch.Tensor]:
    """Each encoder linear's weight as int8 rows on its grid, rounded by GPTQ on its inputs in a run
    of `model` (fp32, its linears plain) over the packed texts `ids`, `lengths`."""
    rows = {}
    for (index, name), moment in input_moments(model, ids, lengths).items():
        weight = getattr(model.layers[index], name).weight.detach().float()
        rows[index, name] = rounded(weight, moment)
    return rows


def input_moments(model: BertMaskedLM, ids: torch.Tensor, lengths: torch.Tensor) -> dict[Linear, torch.Tensor]:
    """`XᵀX` of each encoder linear's inputs `X` over a run of the packed texts `ids`, `lengths`."""
    moments: dict[Linear, torch.Tensor] = {}

    def keep(key: Linear) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
            x = inputs[0].float()
            moments[key] = moments[key] + x.T @ x if key in moments else x.T @ x

        return hook

    handles = [
        getattr(layer, name).register_forward_hook(keep((index, name)))
        for index, layer in enumerate(model.layers)
        for name in LAYER_LINEARS
    ]
    try:
        with torch.inference_mode():
            model.encode_packed(ids, lengths)
    finally:
        for handle in handles:
            handle.remove()
    if len(moments) != len(handles):  # a linear that is not a plain one ran without its hook
        raise ValueError("the model's encoder linears must be plain fp32 linears to measure their inputs")
    return moments


def rounded(weight: torch.Tensor, moment: torch.Tensor) -> torch.Tensor:
    """`weight` `(outputs, inputs)` as int8 rows on its grid, rounded by GPTQ for inputs of second
    moments `moment` `(inputs, inputs)`."""
    h = moment.float()
    mean = float(h.diagonal().mean())
    # An input that never varies at all (every diagonal 0) still gets an invertible `H`.
    h = h + DAMPING * (mean if mean > 0 else 1.0) * torch.eye(h.shape[0], dtype=h.dtype)
    # GPTQ's rule in the form of Chee et al., "QuIP" (2023), who show it is rounding against the
    # LDL factors of `H` itself: with H = RRᵀ, R upper, column j is rounded at its weight plus
    # Σᵢ₍ᵢ<ⱼ₎ (wᵢ - qᵢ) Rᵢⱼ / Rⱼⱼ. The same steps as GPTQ's, which takes the Cholesky factor of H⁻¹
    # (that factor is R⁻¹), without the inverse. R is the lower factor of H in reversed order.
    factor = torch.linalg.cholesky(h.flip(0, 1)).flip(0, 1)
    spread = factor / factor.diagonal()[None, :]
    # Transposed, one input column per row (contiguous), in units of each output row's step.
    w = (weight / row_scales(weight)[:, None]).T.contiguous()
    shifted, q = w.clone(), torch.empty_like(w)  # each column plus the errors spread onto it
    with torch.inference_mode():
        for start in range(0, w.shape[0], BLOCK):
            end = min(start + BLOCK, w.shape[0])
            for column in range(start, end):
                q[column] = shifted[column].round().clamp_(-LEVELS, LEVELS)
                shifted[column + 1 : end].addr_(spread[column, column + 1 : end], w[column] - q[column])
            shifted[end:].addmm_(spread[start:end, end:].T, w[start:end] - q[start:end])
    return q.T.to(torch.int8).contiguous()
