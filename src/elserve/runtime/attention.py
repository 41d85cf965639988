"""Self-attention of packed texts, each text on its own rows: two kernels, and the choice between them.

Both take `q`, `k`, `v` `(tokens, hidden)` and the batch's runs of equal lengths (texts of one
length side by side, as a sorted batch holds them) and give the same sums within fp32 rounding
(~1e-6): `fused` is torch's `scaled_dot_product_attention`, one call a run; `products` is plain
batched products and a softmax in fp32, ~8 calls a run.

Which is faster depends on the CPU and the dtype, so the encoder times both at load (`fastest`),
as it does the linears' layouts. One thread, BERT-base's shape, fp32 (2026-12-07, AMD EPYC Zen 4):
`fused` ran 1.07-2.25x as fast as `products` on runs from one 7-token text to two of 512 tokens,
with AVX-512, AVX2 or SSE4 kernels; in bfloat16 `products` took 0.6-0.75 of `fused`'s time between
32 and 300 tokens. On an Intel Xeon with AVX-512 (2026-12-06) `products` took a fifth of `fused`'s
time on 16 texts of 8-300 tokens (docs/performance.md, "No padding").
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

import torch
import torch.nn.functional as F

from elserve.runtime.timing import first_within, one_thread_seconds

# A run of consecutive texts of one length in a packed batch: (first row, texts, length).
Run = tuple[int, int, int]
Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, list[Run]], torch.Tensor]


def _heads(x: torch.Tensor, rows: slice, count: int, length: int, heads: int) -> torch.Tensor:
    """`x`'s rows of one run as `(texts, heads, length, head size)` (a view)."""
    return x[rows].view(count, length, heads, x.shape[1] // heads).transpose(1, 2)


def products(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, runs: list[Run]) -> torch.Tensor:
    """Batched products and a softmax, the scores in fp32 whatever the layers' dtype."""
    scale = (q.shape[1] // heads) ** -0.5
    out = q.new_empty(q.shape)  # dense, whatever the strides of `q`
    for start, count, length in runs:
        rows = slice(start, start + count * length)
        qh, kh, vh = (_heads(x, rows, count, length, heads) for x in (q, k, v))
        scores = torch.matmul(qh * scale, kh.transpose(-1, -2))
        weights = scores.softmax(-1, dtype=torch.float32).to(q.dtype)
        _heads(out, rows, count, length, heads).copy_(torch.matmul(weights, vh))
    return out


def fused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, runs: list[Run]) -> torch.Tensor:
    """torch's fused kernel, one call a run (no mask: a run's texts are all real tokens)."""
    out = q.new_empty(q.shape)
    for start, count, length in runs:
        rows = slice(start, start + count * length)
        qh, kh, vh = (_heads(x, rows, count, length, heads) for x in (q, k, v))
        _heads(out, rows, count, length, heads).copy_(F.scaled_dot_product_attention(qh, kh, vh))
    return out


# In order of preference: a later kernel is taken only if it is faster by more than the margin.
KERNELS: dict[str, Attention] = {"fused": fused, "products": products}
# What `fastest` is timed on: four texts of 128 tokens, a bulk batch's run on one worker thread.
_SAMPLE_RUN: Run = (0, 4, 128)


@cache
def fastest(hidden: int, heads: int, dtype: torch.dtype, margin: float) -> str:
    """The name of the kernel to run here: the first of `KERNELS` whose time (timing.py) is within
    `margin` of the fastest on a sample of the model's shape.

    Timed once per process for a shape and dtype: every encoder of the process then runs the same
    kernel, so a model loaded twice gives the same rows to the bit (the two kernels differ by fp32
    rounding, and on a noisy machine two timings near the margin can choose differently)."""
    generator = torch.Generator().manual_seed(0)
    rows = _SAMPLE_RUN[1] * _SAMPLE_RUN[2]
    q, k, v = torch.randn(rows, 3 * hidden, generator=generator).to(dtype).split(hidden, dim=-1)
    timed = {
        name: one_thread_seconds(partial(kernel, q, k, v, heads, [_SAMPLE_RUN])) for name, kernel in KERNELS.items()
    }
    return first_within(timed, margin)
