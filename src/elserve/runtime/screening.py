"""The exact SPLADE head, fast: screen every vocabulary entry in int8, finish the few survivors exactly.

Most of a text's 30,522 entries end at weight 0 (`max_i logit_ij + b_j <= 0`), yet the plain
head computes all of them in fp32. Here an int8 product (exact integer arithmetic, ~4x the fp32
GEMM on AVX-512 VNNI) gives each entry an approximate maximum with a PROVEN error bound; only
entries that could be positive under that bound (~1% on real text) are recomputed, in float64.

The bound. Let `h_i` be a batch's token rows (fp32) and `m` any centre (their mean: it takes out
the direction all rows share, which makes the residues small). For each text pick a scale
`s > 0`, quantize `q_i = round((h_i - m) / s)` to int8 and let `e_i = (h_i - m) - s q_i`, computed
in float64 from the fp32 operands, so that it is what rounding really left. At load each decoder
row is split the same way, `w_j = t_j p_j + f_j` with `p_j` int8. Then, exactly in the reals,

    h_i . w_j = m . w_j + s t_j (q_i . p_j) + s q_i . f_j + e_i . w_j

where `q_i . p_j` is an exact int32 product (|q|, |p| <= 127 over 128 dimensions: no overflow).
By Cauchy-Schwarz the last two terms are at most `s |q_i| |f_j| + |e_i| |w_j|`. With `Q`, `E` the
largest `s |q_i|`, `|e_i|` of the text's tokens, and `s t_j >= 0`:

    max_i h_i . w_j  <=  m . w_j + s t_j max_i (q_i . p_j) + Q |f_j| + E |w_j|.

An entry goes to the finish only if this plus `b_j` plus a slack is > 0. The slack,
2^-16 (H |w_j| + Q t_j |p_j| + |b_j| + Q |f_j| + E |w_j|) with `H` the largest `|h_i| + |m|`,
bounds every term of the sum in magnitude, so it covers each rounding of the screen (the fp32
`m . w_j` is off by at most 2^-17 |m| |w_j|; an fp32 product, sum or norm by 2^-24 of its size)
and of the finish (~2^-45) many times over.

The finish computes `max_i h_i . w_j + b_j` in float64 from the fp32 operands (each product
exact, the 128-term sum off by ~1e-14) and rounds once to fp32; `log1p(relu(.))` follows in fp32.
So the weights are those of an unscreened float64 head -- the SPLADE value of the fp32 hidden
states, to the last fp32 bit (save double-rounding ties, ~2^-29 per weight) -- whatever the batch,
the token order or the thread count. The plain fp32 head (`splade.splade_pool`) is off from it by
its own rounding, a few 1e-6, and from itself by as much across batch shapes (MKL picks kernels,
and so summation orders, by shape).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

# 127 levels each side, symmetric, so that a negated row quantizes to the negated integers.
_LEVELS = 127
# Relative slack for float rounding in the screen and the finish (see the module docstring).
_SLACK = 2.0**-16
# An absolute floor for the slack: fp32 values below ~1e-38 lose their relative accuracy.
_TINY = 2.0**-100

# Screen blocks: an int8 (row block x hidden) slab times an int8 (hidden x vocab block) slab into
# one reused int32 buffer; tuned on a 2-core AMD EPYC (Zen 4, 1 MiB L2 per core).
ROW_BLOCK = 512
VOCAB_BLOCK = 1024


@dataclass(frozen=True, eq=False)
class QuantizedVocab:
    """A decoder `(vocab, hidden)`, split once into int8 rows, their scales and what rounding left."""

    weight: torch.Tensor  # (vocab, hidden) fp32, the decoder itself
    bias: torch.Tensor  # (vocab,) fp32
    blocks: tuple[torch.Tensor, ...]  # int8 (hidden, <= vocab block) contiguous slabs of p^T
    scale: torch.Tensor  # (vocab,) t_j
    # Per entry, the factors of the bound and the slack, as a (5, vocab) fp32 matrix whose rows
    # pair with the per-text factors in `screen`: |w_j|, t_j |p_j|, |b_j|, |f_j|, |w_j|.
    factors: torch.Tensor

    @classmethod
    def build(cls, weight: torch.Tensor, bias: torch.Tensor, vocab_block: int = VOCAB_BLOCK) -> QuantizedVocab:
        weight = weight.detach().float().contiguous()
        bias = bias.detach().float().contiguous()
        if weight.ndim != 2 or bias.shape != weight.shape[:1]:
            raise ValueError(f"decoder (vocab, hidden) and bias (vocab,) expected, got {weight.shape}, {bias.shape}")
        exact = weight.double()
        absmax = exact.abs().amax(dim=1)
        scale = torch.where(absmax > 0, absmax / _LEVELS, 1.0).float()
        quantized = torch.round(exact / scale.double()[:, None]).clamp_(-_LEVELS, _LEVELS)
        scaled = scale.double()[:, None] * quantized
        transposed = quantized.to(torch.int8).T
        blocks = tuple(
            transposed[:, v0 : v0 + vocab_block].contiguous() for v0 in range(0, weight.shape[0], vocab_block)
        )
        norm = exact.norm(dim=1)
        factors = torch.stack(
            [norm, scaled.norm(dim=1), bias.double().abs(), (exact - scaled).norm(dim=1), norm]
        ).float()
        return cls(weight=weight, bias=bias, blocks=blocks, scale=scale, factors=factors)

    @property
    def size(self) -> int:
        return self.weight.shape[0]


def screen(rows: torch.Tensor, lengths: torch.Tensor, vocab: QuantizedVocab, *, row_block: int = ROW_BLOCK) -> torch.Tensor:
    """`(texts, vocab)` bool: the entries of each text whose SPLADE weight may be positive (a
    superset of those that are). `rows` is `(sum(lengths), hidden)` fp32, text after text."""
    texts = lengths.numel()
    text_of_row = torch.repeat_interleave(torch.arange(texts), lengths)
    centre = rows.mean(dim=0)
    centred = rows - centre
    absmax = _text_max(centred.abs().amax(dim=1), text_of_row, texts)
    # A text whose tokens all equal the centre (one token alone) has no residue: any scale does.
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
    # The upper bound of each (text, entry), less its int8 part.
    base = (centre @ vocab.weight.T + vocab.bias + _TINY).expand(texts, -1)
    upper = torch.addmm(base, per_text.float(), vocab.factors)

    best = _int8_max(quantized.to(torch.int8), text_of_row, texts, vocab, row_block)
    approx = best.float().mul_(vocab.scale).mul_(scale[:, None])
    return upper.add_(approx) > 0


def _text_max(per_row: torch.Tensor, text_of_row: torch.Tensor, texts: int) -> torch.Tensor:
    with warnings.catch_warnings():
        # index_reduce_ is flagged "beta" but has been stable since torch 2.0.
        warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)
        return torch.zeros(texts, dtype=per_row.dtype).index_reduce_(0, text_of_row, per_row, "amax").float()


def _int8_max(
    quantized: torch.Tensor, text_of_row: torch.Tensor, texts: int, vocab: QuantizedVocab, row_block: int
) -> torch.Tensor:
    """`max_i q_i . p_j` over each text's rows: `(texts, vocab)` int32, exact."""
    rows = quantized.shape[0]
    best = torch.full((texts, vocab.size), torch.iinfo(torch.int32).min, dtype=torch.int32)
    widest = max(block.shape[1] for block in vocab.blocks)
    buffer = torch.empty(min(row_block, rows) * widest, dtype=torch.int32)
    v0 = 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)
        for block in vocab.blocks:
            width = block.shape[1]
            best_block = best[:, v0 : v0 + width]
            for r0 in range(0, rows, row_block):
                chunk = quantized[r0 : r0 + row_block]
                products = buffer[: chunk.shape[0] * width].view(chunk.shape[0], width)
                torch._int_mm(chunk, block, out=products)
                best_block.index_reduce_(0, text_of_row[r0 : r0 + row_block], products, "amax")
            v0 += width
    return best


def finish(
    rows: torch.Tensor, lengths: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, candidates: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The weights of the candidate `(text, entry)` pairs: `(text, entry, weight)`, by text then entry.

    Each is `log1p(relu(fp32(max_i h_i . w_j + b_j)))`, the max and the sums in float64.
    """
    pairs = candidates.nonzero()
    text, entry = pairs[:, 0], pairs[:, 1]
    per_text = torch.bincount(text, minlength=lengths.numel()).tolist()
    logits = torch.empty(pairs.shape[0], dtype=torch.float64)
    # One small product per text: ~250 entries x its tokens. Padding texts into one batched
    # product costs more than it saves (the widest text sets the width of all).
    p0 = 0
    for hidden, count in zip(rows.split(lengths.tolist()), per_text, strict=True):
        if count:
            cols = entry[p0 : p0 + count]
            torch.amax(hidden.double() @ weight[cols].double().T, dim=0, out=logits[p0 : p0 + count])
            p0 += count
    logits += bias[entry]
    return text, entry, torch.log1p(torch.relu_(logits.float()))


def screened_pool(rows: torch.Tensor, lengths: torch.Tensor, vocab: QuantizedVocab) -> torch.Tensor:
    """SPLADE weights `(texts, vocab)` fp32, as `splade.splade_pool` computes them but screened."""
    texts = lengths.numel()
    dense = torch.zeros(texts, vocab.size, dtype=torch.float32)
    if texts == 0:
        return dense
    if bool((lengths < 1).any()) or int(lengths.sum()) != rows.shape[0]:
        raise ValueError("every text needs at least one token and rows must hold exactly sum(lengths) tokens")
    text, entry, weights = finish(rows, lengths, vocab.weight, vocab.bias, screen(rows, lengths, vocab))
    dense[text, entry] = weights
    return dense
