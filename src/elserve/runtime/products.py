"""The screen's product kernels: the exact integer sums `q_i . p_j` of int8 token rows `q` and int8
decoder rows `p`, each by another instruction path, for the machine to choose among at load.

The screen (`screening.py`) is exact only if these sums are. Not every path is exact on every
CPU: oneDNN's u8 x s8 product sums pairs of byte products in int16 (`vpmaddubsw`) where the CPU
has no VNNI, which saturates when two products near 255 x 127 meet, and torch's `_int_mm` goes
through the same oneDNN path on such CPUs or through a scalar loop (exact, 20x slower than fp32).
So each kernel is checked against float64 on rows built to saturate it (`is_exact`), and a kernel
can ask for 7-bit decoder rows (`levels = 63`): then a pair sums to at most 2 x 255 x 63 < 2^15,
and the int16 path is exact too. What is fastest differs as much (see `head.py`, which measures).

Every kernel answers the sums of the entries `[v0, v1)` of the decoder as int32 or fp32 holding
exact integers (|q . p| <= hidden x 128 x 127 < 2^24 for hidden <= 1,032: fp32 holds them; a
wider model fails the check of the kernels that answer in fp32).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

import torch

# The decoder's quantization levels each side: 127 (8 bits), or 63 where pairs of byte products
# must fit int16 (`OneDnnPacked` with `levels=63`).
LEVELS_8 = 127
LEVELS_7 = 63


class ProductKernel(ABC):
    """Exact `q . p^T` of int8 token rows against the decoder's int8 rows, for vocabulary ranges
    fixed at build (`ranges`), so that a kernel may prepare (pack) each range once."""

    name: str
    levels: int  # the decoder's quantization levels this kernel needs to be exact
    dtype: torch.dtype = torch.float32  # of the sums it answers

    def __init__(self, rows: torch.Tensor, ranges: Iterable[tuple[int, int]]) -> None:
        """`rows`: `(vocab, hidden)` int8 in `[-levels, levels]`; `ranges`: the `(v0, v1)` that
        `products` will be asked for."""
        self.rows = rows
        self.ranges = tuple(ranges)

    def operand(self, quantized: torch.Tensor) -> torch.Tensor:
        """The int8 token rows `q` `(n, hidden)` as `products` takes them: converted once per batch,
        however many vocabulary ranges follow (row slices of it stay valid operands)."""
        return quantized

    @abstractmethod
    def products(self, operand: torch.Tensor, v0: int, v1: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """`q_i . p_j` for the rows `q` of `operand` (`operand(q)`) and `j in [v0, v1)`: `(n, v1 - v0)`,
        exact; into `out` (of `dtype`) where the kernel can write into a given buffer (a fresh one
        each block costs page faults), else a new tensor."""


class OneDnnPacked(ProductKernel):
    """oneDNN's u8 x s8 -> s32 product, each range of the decoder prepacked into oneDNN's blocked
    layout at build. The rows go in as `u = q + 128` (u8) and the sums come out scaled by 1.0 into
    fp32. With VNNI (`vpdpbusd`) every sum is exact at 8 bits; without it, at 7.

    oneDNN's own zero-point compensation (zero point 128) costs a short request more than its
    product on AVX2 (9 rows: 3.1 ms against 1.2 without it), so the kernel passes zero point 0
    and adds `-128 sum_k p_jk` as the product's fp32 bias instead: `u . p - 128 sum p = q . p`,
    exact while `u . p` fits fp32's 24 bits (255 x max_j sum_k |p_jk| < 2^24; a model too wide
    for that keeps oneDNN's compensation, whose int32 result is below 2^24 anyway).

    Packed, the decoder streams better than `_int_mm` reads it from the plain layout: one short
    text with cold caches (as between an idle server's requests), 0.45 ms against 1.6 ms on an
    AVX-512 VNNI EPYC."""

    def __init__(self, rows: torch.Tensor, ranges: Iterable[tuple[int, int]], levels: int = LEVELS_8) -> None:
        super().__init__(rows, ranges)
        self.levels = levels
        self.name = "onednn-u8s8" if levels == LEVELS_8 else "onednn-u8s7"
        self._packs = {
            (v0, v1): torch.ops.onednn.qlinear_prepack(rows[v0:v1].contiguous(), None) for v0, v1 in self.ranges
        }
        widest = max(v1 - v0 for v0, v1 in self.ranges)
        self._scales = torch.ones(widest, dtype=torch.float32)
        self._zero_points = torch.zeros(widest, dtype=torch.int64)
        sums = rows.to(torch.int32).sum(dim=1)
        fits = rows.numel() == 0 or 255 * int(rows.abs().to(torch.int32).sum(dim=1).max()) < 2**24
        self._zero_point = 0 if fits else 128
        self._bias = (-128.0 * sums.double()).float() if fits else None

    def operand(self, quantized: torch.Tensor) -> torch.Tensor:
        # u = q + 128 as u8: flipping a two's-complement byte's sign bit adds 128 (one pass).
        return quantized.view(torch.uint8) ^ 128

    def products(self, operand: torch.Tensor, v0: int, v1: int, out: torch.Tensor | None = None) -> torch.Tensor:
        bias = None if self._bias is None else self._bias[v0:v1]
        return torch.ops.onednn.qlinear_pointwise(
            operand, 1.0, self._zero_point, self._packs[(v0, v1)], self._scales[: v1 - v0],
            self._zero_points[: v1 - v0], bias, 1.0, 0, torch.float32, "none", [], "",
        )  # fmt: skip


class IntMm(ProductKernel):
    """torch's `_int_mm` (s8 x s8 -> s32) against the plain transposed decoder: oneDNN's VNNI
    product on CPUs that have it, a saturating oneDNN path or a scalar loop on others."""

    name = "int_mm"
    levels = LEVELS_8
    dtype = torch.int32

    def __init__(self, rows: torch.Tensor, ranges: Iterable[tuple[int, int]]) -> None:
        super().__init__(rows, ranges)
        self._transposed = rows.T.contiguous()

    def products(self, operand: torch.Tensor, v0: int, v1: int, out: torch.Tensor | None = None) -> torch.Tensor:
        if out is None:
            return torch._int_mm(operand, self._transposed[:, v0:v1])
        return torch._int_mm(operand, self._transposed[:, v0:v1], out=out)


class Fp32Products(ProductKernel):
    """The int8 operands as fp32 through the BLAS's fp32 product: every partial sum is an integer
    below 2^24, so the sums are exact in any order. As fast as the plain fp32 head, on any CPU
    (the floor the others must beat), with the screen's exact weights."""

    name = "fp32-screen"
    levels = LEVELS_8

    def __init__(self, rows: torch.Tensor, ranges: Iterable[tuple[int, int]]) -> None:
        super().__init__(rows, ranges)
        self._transposed = rows.T.float().contiguous()

    def operand(self, quantized: torch.Tensor) -> torch.Tensor:
        return quantized.float()

    def products(self, operand: torch.Tensor, v0: int, v1: int, out: torch.Tensor | None = None) -> torch.Tensor:
        return torch.mm(operand, self._transposed[:, v0:v1], out=out)


# Every kernel by name, with the decoder levels it needs, in order of preference: tighter bound
# first, and among equals oneDNN's packed product, which streams the decoder better (its fresh
# result tensors cost no page faults in a process that keeps its heap: runtime/heap.py). `head.py`
# keeps an earlier kernel over a later one that is not clearly faster.
KERNELS: dict[str, tuple[int, Callable[[torch.Tensor, Iterable[tuple[int, int]]], ProductKernel]]] = {
    "onednn-u8s8": (LEVELS_8, lambda rows, ranges: OneDnnPacked(rows, ranges, LEVELS_8)),
    "int_mm": (LEVELS_8, IntMm),
    "onednn-u8s7": (LEVELS_7, lambda rows, ranges: OneDnnPacked(rows, ranges, LEVELS_7)),
    "fp32-screen": (LEVELS_8, Fp32Products),
}


def adversarial_rows(rows: torch.Tensor, levels: int = LEVELS_8) -> torch.Tensor:
    """Int8 token rows that push a kernel's sums to their extremes against the decoder `rows`:
    `+-127 x sign(p_j)` for the decoder rows with the largest neighbouring pairs (with zero point
    128 these give each pair of p_j its largest and its lowest sum: what saturates int16),
    constant +-127 rows, and a spread of random ones."""
    hidden = rows.shape[1]
    magnitude = rows.abs().to(torch.int32)
    # Neighbours at either offset: which elements a kernel pairs depends on its packing.
    pairs = magnitude[:, 1:] + magnitude[:, :-1] if hidden > 1 else magnitude
    worst = pairs.amax(dim=1).topk(min(8, rows.shape[0])).indices
    signs = torch.where(rows[worst] < 0, -1, 1).to(torch.int8)
    g = torch.Generator().manual_seed(0)
    constant = torch.ones(2, hidden, dtype=torch.int8) * torch.tensor([[1], [-1]], dtype=torch.int8)
    spread = torch.randint(-levels, levels + 1, (6, hidden), generator=g, dtype=torch.int8)
    return torch.cat([signs * LEVELS_8, -signs * LEVELS_8, constant * LEVELS_8, spread])


def is_exact(kernel: ProductKernel) -> bool:
    """Whether `kernel` gives the exact sums on this machine, on every range it was built for,
    for `adversarial_rows` (and does not fail: a kernel this build or CPU lacks is not exact)."""
    sample = adversarial_rows(kernel.rows, kernel.levels)
    exact = sample.double() @ kernel.rows.double().T
    try:
        for v0, v1 in kernel.ranges:
            if not torch.equal(kernel.products(kernel.operand(sample), v0, v1).double(), exact[:, v0:v1]):
                return False
    except (RuntimeError, NotImplementedError):
        return False
    return True
