"""The exact SPLADE head, fast: screen every vocabulary entry in int8, finish the few survivors exactly.

Most of a text's 30,522 entries end at weight 0 (`max_i logit_ij + b_j <= 0`), yet the plain
head computes all of them in fp32. Here an int8 product (exact integer arithmetic: ~4x the fp32
GEMM with AVX-512 VNNI, ~3x with AVX2) gives each entry an approximate maximum with a PROVEN error
bound; only entries that could be positive under that bound (~1% on real text) are recomputed, in
float64. Which instructions compute the integer sums is the machine's choice (`products.py`,
`head.py`); the weights do not depend on it.

The bound. Let `h_i` be a batch's token rows (fp32) and `m` any fixed centre (the encoder takes the
shift of the MLM head's LayerNorm, which every row carries: the smaller the residues `h_i - m`,
the tighter the bound; the batch mean would be tighter still, but `m . W` then costs a pass over
the whole fp32 decoder per batch, which dominates short requests). For each text pick a scale
`s > 0`, quantize `q_i = round((h_i - m) / s)` to int8 and let `e_i = (h_i - m) - s q_i`, computed
in float64 from the fp32 operands, so that it is what rounding really left. At load each decoder
row is split the same way, `w_j = t_j p_j + f_j` with `p_j` int8. Then, exactly in the reals,

    h_i . w_j = m . w_j + s t_j (q_i . p_j) + s q_i . f_j + e_i . w_j

where `q_i . p_j` is an exact integer product (|q| <= 127, |p| <= 127 or 63: see `products.py`).
By Cauchy-Schwarz the last two terms are at most `s |q_i| |f_j| + |e_i| |w_j|`. With `Q`, `E` the
largest `s |q_i|`, `|e_i|` of the text's tokens, and `s t_j >= 0`:

    max_i h_i . w_j  <=  m . w_j + s t_j max_i (q_i . p_j) + Q |f_j| + E |w_j|.

An entry goes to the finish only if this plus `b_j` plus a slack is > 0 (all of it divided by
`t_j > 0`, which saves a pass). The slack, 2^-16 (H |w_j| + Q t_j |p_j| + |b_j| + Q |f_j| + E |w_j|)
with `H` the largest `|h_i| + |m|`, bounds every term of the sum in magnitude, so it covers each
rounding of the screen (an fp32 product, sum, quotient or norm is off by 2^-24 of its size; `m . w_j`
is computed in float64 once) and of the finish (~2^-45) many times over.

The finish computes `max_i h_i . w_j + b_j` in float64 from the fp32 operands (each product
exact, the 128-term sum off by ~1e-14) and rounds once to fp32; `log1p(relu(.))` follows in fp32.
So the weights are those of an unscreened float64 head -- the SPLADE value of the fp32 hidden
states, to the last fp32 bit (save double-rounding ties, ~2^-29 per weight) -- whatever the batch,
the token order or the thread count. The plain fp32 head (`splade.splade_pool`) is off from it by
its own rounding, a few 1e-6, and from itself by as much across batch shapes (MKL picks kernels,
and so summation orders, by shape).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from elserve.runtime.kernel_sizes import ROW_BLOCK, VOCAB_BLOCK
from elserve.runtime.products import ProductKernel

# 127 levels each side, symmetric, so that a negated row quantizes to the negated integers.
_LEVELS = 127
# Relative slack for float rounding in the screen and the finish (see the module docstring).
_SLACK = 2.0**-16
# An absolute floor for the slack: fp32 values below ~1e-38 lose their relative accuracy.
_TINY = 2.0**-100
# The smallest decoder-row scale t_j (see `QuantizedVocab.build`).
_SMALLEST_SCALE = 2.0**-60

# Big batches are screened in blocks of ROW_BLOCK x VOCAB_BLOCK (kernel_sizes.py). Each block costs ~10
# torch calls, so a short request (up to SMALL_ROWS rows) takes the whole vocabulary in one product
# instead, whose call overhead would otherwise dominate.
SMALL_ROWS = 32


def vocab_ranges(size: int, block: int = VOCAB_BLOCK) -> list[tuple[int, int]]:
    """The vocabulary ranges a kernel is asked for: the whole of it (short requests), then blocks."""
    return [(0, size), *((v0, min(v0 + block, size)) for v0 in range(0, size, block))]


@dataclass(frozen=True, eq=False)
class QuantizedVocab:
    """A decoder `(vocab, hidden)`, split once into int8 rows, their scales and what rounding left,
    with everything of the bound that does not depend on the text."""

    weight: torch.Tensor  # (vocab, hidden) fp32, the decoder itself
    bias: torch.Tensor  # (vocab,) fp32
    centre: torch.Tensor  # (hidden,) fp32, the m of the module docstring
    rows: torch.Tensor  # (vocab, hidden) int8, p, within [-levels, levels]
    # The bound divided by t_j > 0, which leaves the int8 part as s max_i (q_i . p_j):
    # `base` is (m . w_j + b_j + tiny) / t_j, and `factors` (5, vocab) pairs with the per-text
    # factors (H, Q, 1, Q, E) of `screen`: |w_j|, t_j |p_j|, |b_j|, |f_j|, |w_j|, each / t_j.
    base: torch.Tensor
    factors: torch.Tensor

    @classmethod
    def build(
        cls,
        weight: torch.Tensor,
        bias: torch.Tensor,
        centre: torch.Tensor | None = None,
        levels: int = _LEVELS,
    ) -> QuantizedVocab:
        """`centre` is any vector the hidden states cluster around (zeros by default); the
        weights do not depend on it, only how many entries the screen lets through. `levels`
        (127 or fewer) is what the product kernel needs (see `products.py`)."""
        weight = weight.detach().float().contiguous()
        bias = bias.detach().float().contiguous()
        if weight.ndim != 2 or bias.shape != weight.shape[:1]:
            raise ValueError(f"decoder (vocab, hidden) and bias (vocab,) expected, got {weight.shape}, {bias.shape}")
        centre = torch.zeros(weight.shape[1]) if centre is None else centre.detach().float().contiguous()
        exact = weight.double()
        # Any t_j > 0 makes the identity hold; the floor keeps 1 / t_j finite for tiny rows.
        scale = (exact.abs().amax(dim=1) / levels).clamp_(min=_SMALLEST_SCALE).float().double()
        quantized = torch.round(exact / scale[:, None]).clamp_(-levels, levels)
        scaled = scale[:, None] * quantized
        norm = exact.norm(dim=1)
        factors = torch.stack([norm, scaled.norm(dim=1), bias.double().abs(), (exact - scaled).norm(dim=1), norm])
        base = exact @ centre.double() + bias.double() + _TINY
        return cls(
            weight=weight,
            bias=bias,
            centre=centre,
            rows=quantized.to(torch.int8).contiguous(),
            base=(base / scale).float(),
            factors=(factors / scale).float(),
        )

    @property
    def size(self) -> int:
        return self.weight.shape[0]


def screen(
    rows: torch.Tensor,
    lengths: torch.Tensor,
    vocab: QuantizedVocab,
    kernel: ProductKernel,
    *,
    whole: bool | None = None,
    row_block: int = ROW_BLOCK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `(text, entry)` pairs whose SPLADE weight may be positive (a superset of those that
    are), as two int64 tensors sorted by text then entry. `rows` is `(sum(lengths), hidden)`
    fp32, text after text. `kernel` computes the integer sums, built on `vocab.rows` for
    `vocab_ranges`; `whole` asks for one product over the whole vocabulary (by default: for up
    to `SMALL_ROWS` rows) rather than blocks."""
    texts = lengths.numel()
    # (numpy's repeat: torch's costs a short request ~40 us more)
    text_of_row = torch.from_numpy(np.repeat(np.arange(texts), lengths.numpy()))
    centre = vocab.centre
    centred = rows - centre
    absmax = _text_max(centred.abs().amax(dim=1), text_of_row, texts)
    # A text whose tokens all equal the centre has no residue: any scale does.
    scale = torch.where(absmax > 0, absmax / _LEVELS, 1.0)
    row_scale = scale[text_of_row][:, None]
    quantized = torch.round(centred / row_scale).clamp_(-_LEVELS, _LEVELS)
    # What quantization left, in float64 from the fp32 operands (not from `centred`, whose fp32
    # subtraction rounded): h_i - m - s q_i.
    scaled = quantized.double() * row_scale.double()
    residue = (rows.double() - centre.double()) - scaled
    big_q = _text_max(scaled.norm(dim=1), text_of_row, texts)
    big_e = _text_max(residue.norm(dim=1), text_of_row, texts)
    big_h = _text_max(rows.double().norm(dim=1), text_of_row, texts) + float(centre.double().norm())
    # Per text, the factors pairing with `vocab.factors`: slack (H, Q, 1, Q, E) times 2^-16, and
    # the bound Q |f_j| + E |w_j| itself (rounded up by the slack's own |f_j|, |w_j| rows).
    per_text = torch.stack([big_h, big_q, torch.ones_like(big_h), big_q, big_e], dim=1) * _SLACK
    per_text[:, 3:] += torch.stack([big_q, big_e], dim=1)
    per_text = per_text.float()
    operand = kernel.operand(quantized.to(torch.int8))
    scale_col = scale[:, None]

    if whole if whole is not None else rows.shape[0] <= SMALL_ROWS:
        # Each text's best row per entry, over the whole vocabulary at once.
        best = _text_max(kernel.products(operand, 0, vocab.size), text_of_row, texts)
        upper = torch.addmm(vocab.base, per_text, vocab.factors)
        text, entry = upper.addcmul_(best, scale_col).gt_(0).nonzero().unbind(1)
        return text, entry  # nonzero's order: by text, then entry

    row_block = min(row_block, rows.shape[0])
    # Buffers reused block after block (results stay in cache) and call after call (fresh
    # megabytes are page-faulted in, which costs a short request more than its products).
    widest = max(v1 - v0 for v0, v1 in kernel.ranges[1:])
    best_buffer = _scratch(f"best-{kernel.dtype}", texts * widest, kernel.dtype)
    products = _scratch(f"products-{kernel.dtype}", row_block * widest, kernel.dtype)
    upper_buffer = _scratch("upper", texts * widest, torch.float32)
    found = []
    for v0, v1 in kernel.ranges[1:]:
        best = best_buffer[: texts * (v1 - v0)].view(texts, v1 - v0)
        _block_max(operand, text_of_row, kernel, v0, v1, best, products, row_block)
        # The upper bound of each (text, entry) over t_j: the rest, then s max_i (q_i . p_j).
        upper = upper_buffer[: texts * (v1 - v0)].view(texts, v1 - v0)
        torch.addmm(vocab.base[v0:v1], per_text, vocab.factors[:, v0:v1], out=upper)
        hits = upper.addcmul_(best, scale_col).gt_(0).nonzero()
        hits[:, 1] += v0
        found.append(hits)
    pairs = torch.cat(found)
    order = torch.argsort(pairs[:, 0] * vocab.size + pairs[:, 1])
    return pairs[order, 0], pairs[order, 1]


_SCRATCH = threading.local()


def _scratch(name: str, size: int, dtype: torch.dtype) -> torch.Tensor:
    """A flat buffer of `size` elements, kept per thread and name for the next call."""
    buffer = getattr(_SCRATCH, name, None)
    if buffer is None or buffer.numel() < size:
        # A normal tensor even under inference mode, so that callers of either mode may write it.
        with torch.inference_mode(False):
            buffer = torch.empty(size, dtype=dtype)
        setattr(_SCRATCH, name, buffer)
    return buffer[:size]


def _text_max(per_row: torch.Tensor, text_of_row: torch.Tensor, texts: int) -> torch.Tensor:
    """The largest of each text's rows of `per_row` (`(rows, ...)`), in fp32."""
    if texts == 1:  # a short request's usual case, in one op instead of three
        return per_row.amax(dim=0, keepdim=True).float()
    # Every text has a row, so the -inf start never shows. (`include_self=False` does without
    # it, but fills much slower.)
    start = torch.full((texts, *per_row.shape[1:]), _lowest(per_row.dtype), dtype=per_row.dtype)
    with warnings.catch_warnings():
        # index_reduce_ is flagged "beta" but has been stable since torch 2.0.
        warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)
        return start.index_reduce_(0, text_of_row, per_row, "amax").float()


def _lowest(dtype: torch.dtype) -> float:
    """Where a running maximum of `dtype` starts."""
    return float("-inf") if dtype.is_floating_point else torch.iinfo(dtype).min


def _block_max(
    operand: torch.Tensor,
    text_of_row: torch.Tensor,
    kernel: ProductKernel,
    v0: int,
    v1: int,
    best: torch.Tensor,
    buffer: torch.Tensor,
    row_block: int,
) -> None:
    """`best[t, j] = max_i q_i . p_j` over the rows of each text t, for the entries `[v0, v1)`:
    exact integers, in the kernel's dtype (`operand`: the rows `q` as `kernel.operand` gave them)."""
    best.fill_(_lowest(best.dtype))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)
        for r0 in range(0, operand.shape[0], row_block):
            chunk = operand[r0 : r0 + row_block]
            out = buffer[: chunk.shape[0] * (v1 - v0)].view(chunk.shape[0], v1 - v0)
            products = kernel.products(chunk, v0, v1, out)
            best.index_reduce_(0, text_of_row[r0 : r0 + row_block], products, "amax")


def finish(
    rows: torch.Tensor,
    lengths: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    text: torch.Tensor,
    entry: torch.Tensor,
) -> torch.Tensor:
    """The weight of each `(text, entry)` pair (sorted by text), fp32:
    `log1p(relu(fp32(max_i h_i . w_j + b_j)))`, the max and the sums in float64."""
    per_text = torch.bincount(text, minlength=lengths.numel())
    logits = torch.empty(text.shape[0], dtype=torch.float64)
    hidden = rows.double().split(lengths.tolist())
    chosen = weight[entry].double()
    pair_start = (torch.cumsum(per_text, 0) - per_text).tolist()
    counts = per_text.tolist()

    # One small product per text (its tokens x its ~250 entries): padding texts into one
    # batched product costs more than it saves, the widest text setting the width of all.
    for t, count in enumerate(counts):
        if count:
            p0, p1 = pair_start[t], pair_start[t] + count
            torch.amax(hidden[t] @ chosen[p0:p1].T, dim=0, out=logits[p0:p1])
    logits += bias[entry]
    return torch.log1p(torch.relu_(logits.float()))


def screened_pool(
    rows: torch.Tensor, lengths: torch.Tensor, vocab: QuantizedVocab, kernel: ProductKernel
) -> torch.Tensor:
    """SPLADE weights `(texts, vocab)` fp32, as `splade.splade_pool` computes them but screened."""
    texts = lengths.numel()
    dense = torch.zeros(texts, vocab.size, dtype=torch.float32)
    if texts == 0:
        return dense
    if bool((lengths < 1).any()) or int(lengths.sum()) != rows.shape[0]:
        raise ValueError("every text needs at least one token and rows must hold exactly sum(lengths) tokens")
    text, entry = screen(rows, lengths, vocab, kernel)
    dense[text, entry] = finish(rows, lengths, vocab.weight, vocab.bias, text, entry)
    return dense
