"""The opt-in `int8` layers: int8 weights and dynamically quantized int8 activations.

Each linear of the encoder layers keeps its weight as int8 with one scale per output row
(symmetric, 127 levels each side), rounded onto that grid by GPTQ on a sample of the model's own
inputs, which makes up each weight's rounding error with the weights after it (int8_weights.py),
and quantizes its input on the fly to unsigned integers with
one scale and zero point for the batch's rows. Two kernels compute it (`KERNELS`): fbgemm's
dynamic quantized linear, and oneDNN's quantized linear (which runs on AMX's int8 tiles where the
CPU has them). Each worker times both at load, on a short request and on the model's first layer
at a bulk batch's rows, and keeps the faster at each (`checked_int8_layers`: one copy, or two
where the kernels part); both compute the same integer sums, so the choice changes speed only.

The input gets all 8 bits where a kernel's int8 product sums u8 x s8 pairs without saturating
(VNNI's `vpdpbusd` and AMX add them into int32), and 7 bits where it would saturate: AVX2's
`vpmaddubsw` adds pairs into int16, which 255 x 127 x 2 overflows and 127 x 127 x 2 does not.
Which one a kernel has on this CPU is probed once, on the kernel itself (`activation_bits_of`),
not read from flags: each library picks its instruction set on its own
(`FBGEMM_ENABLE_INSTRUCTIONS`, `ONEDNN_MAX_CPU_ISA` cap them). Either way the integer sums are
exact, so a CPU changes only the input's resolution, never the arithmetic.
Everything else stays fp32: embeddings, attention, LayerNorms, the head's transform and the exact
vocabulary head, which then pools the approximate rows exactly.

An activation scale shared by the batch means a text's vector can move slightly with the other
texts of its batch (within the agreement that `precision int8` states). Whether int8 runs at all
is measured at load (`int8_refusal`): on a CPU whose int8 product is no faster than its fp32 one
it is refused with the two timings.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import torch
from torch import nn

from elserve.runtime.bert import LAYER_LINEARS, BertMaskedLM, OutputFusing
from elserve.runtime.config import ACTIVATIONS
from elserve.runtime.int8_weights import Linear, compensated_rows, nearest_rows, row_scales
from elserve.runtime.kernel_sizes import BATCH_TOKENS
from elserve.runtime.timing import one_thread_seconds, sample_batch

T = TypeVar("T")

# Quantized tensors are flagged for removal in a later torch; this one (pinned) has them.
# `OneDnnLinear` makes one on every call, which would print the warning in every worker's log.
warnings.filterwarnings("ignore", message="torch.quantize_per_tensor, torch.quantize_per_channel", category=UserWarning)

# int8 must take at most this share of exact's time on the sample to be allowed at all: an
# approximation that is not clearly faster has no reason to run.
MAX_INT8_SHARE = 0.9
# How every refusal of int8 for speed begins (the benchmark tells a refusal from a failure by it).
REFUSED = "precision [int8] is not faster than [exact] on this CPU"
# A later kernel of `KERNELS` is chosen over an earlier one only where it takes at most this share
# of its time: within timing noise, the earlier one stays.
SWITCH_SHARE = 0.85
# oneDNN's post-op (name, algorithm) for each mode of `ACTIVATIONS`: the same function, to fp32's
# rounding (erf GELU and ReLU to the bit, tanh GELU within 2.4e-7 of torch's).
ONEDNN_ACTIVATIONS = {"none": ("gelu", "none"), "tanh": ("gelu", "tanh"), "relu": ("relu", "")}
# The sample int8 is timed against exact on at load: a few texts, as a small bulk batch holds them.
SAMPLE_TEXTS, SAMPLE_LENGTH = 4, 32
# The samples the kernels are timed on against each other, for each kind of batch the encoder
# runs apart (`Int8Layers`): a short request's text (a query: 8 tokens), and one layer on a bulk
# batch's rows (a backlog's batch per thread on two threads, `kernel_sizes.BATCH_TOKENS`). The
# kernels part between them: on an AVX-512 VNNI EPYC fbgemm ran a short text's layers 7% faster
# and oneDNN a bulk batch's 1.1-1.4x as fast; with AVX2 forced on a Xeon, oneDNN's ran a bulk
# batch 3.5% faster and a short text 2.5x as slow (docs/performance.md).
SHORT_TEXTS, SHORT_LENGTH = 1, 8
# The random texts GPTQ measures the inputs' moments on (int8_weights.py): 1,024 tokens, fewer than
# the widest input (3,072), whose `H` the damping keeps invertible. They did as well as 16 texts or
# 64 corpus passages, and 4 texts a little worse (docs/performance.md).
MOMENT_TEXTS, MOMENT_LENGTH = 8, 128
BULK_ROWS, BULK_LENGTH = BATCH_TOKENS // 2, 128


class Int8Linear(OutputFusing):
    """A `Linear` with int8 weights (a scale per output row) and dynamic activations of
    `activation_bits` bits (8, or 7 where 8 would saturate: see the module's docstring); the
    kernel that computes it is the subclass's, and fuses what follows it where it can."""

    kernel = ""

    def __init__(self, linear: nn.Module, activation_bits: int | None = None, rows: torch.Tensor | None = None) -> None:
        """`rows`: the weight as int8 on its grid (`int8_weights`); by default each weight
        rounded to its nearest step."""
        super().__init__()
        bits = activation_bits or activation_bits_of(type(self))
        if bits not in (7, 8):
            raise ValueError(f"activation bits must be 7 or 8, got [{bits}]")
        self.activation_bits = bits
        weight, bias = linear.weight, linear.bias
        assert isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)
        weight = weight.detach().float()
        rows = nearest_rows(weight) if rows is None else rows
        self._pack(rows, row_scales(weight), bias.detach().float())

    def _pack(self, rows: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor) -> None:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class FbgemmLinear(Int8Linear):
    """torch's dynamic quantized linear (fbgemm on x86-64): it quantizes the input itself."""

    kernel = "fbgemm"

    def _pack(self, rows: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor) -> None:
        with warnings.catch_warnings():
            # Quantized tensors are flagged for removal in a later torch; this one (pinned) has them.
            warnings.filterwarnings("ignore", category=UserWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            quantized = torch._make_per_channel_quantized_tensor(rows, scales.double(), _zeros(rows), 0)
            self._packed = torch.ops.quantized.linear_prepack(quantized, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # reduce_range: the input quantized to 0..127 instead of 0..255.
        return torch.ops.quantized.linear_dynamic(x, self._packed, self.activation_bits == 7)


class OneDnnLinear(Int8Linear):
    """oneDNN's quantized linear on an input quantized here (one scale and zero point for the
    batch, as fbgemm's), its weight packed once into oneDNN's layout; bias and output scale, and
    the layer's activation or residual where it follows (`OutputFusing`), are applied as the
    product writes its output."""

    kernel = "onednn"

    def _pack(self, rows: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor) -> None:
        self._packed = torch.ops.onednn.qlinear_prepack(rows, None)
        self._scales, self._zeros, self._bias = scales, _zeros(rows), bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._product(x, "none", "")

    def activated(self, x: torch.Tensor, act: str) -> torch.Tensor:
        return self._product(x, *ONEDNN_ACTIVATIONS[ACTIVATIONS[act]])

    def plus(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:
            return residual.clone()
        q, scale, zero_point = self._quantized(x)
        return torch.ops.onednn.qlinear_pointwise.binary(
            q, scale, zero_point, self._packed, self._scales, self._zeros, residual, self._bias,
            1.0, 0, torch.float32, 1.0, 0, "add", 1.0, "none", [], "",
        )  # fmt: skip

    def _product(self, x: torch.Tensor, post_op: str, algorithm: str) -> torch.Tensor:
        if x.numel() == 0:  # no rows: no range to quantize by
            return x.new_zeros((*x.shape[:-1], self._bias.shape[0]))
        q, scale, zero_point = self._quantized(x)
        return torch.ops.onednn.qlinear_pointwise(
            q, scale, zero_point, self._packed, self._scales, self._zeros, self._bias,
            1.0, 0, torch.float32, post_op, [], algorithm,
        )  # fmt: skip

    def _quantized(self, x: torch.Tensor) -> tuple[torch.Tensor, float, int]:
        scale, zero_point = _input_grid(x, 2**self.activation_bits - 1)
        # One pass to quantize, and a view of its bytes (not `int_repr`'s copy) for oneDNN.
        q = torch.quantize_per_tensor(x, scale, zero_point, torch.quint8).view(torch.uint8)
        return q, scale, zero_point


def _input_grid(x: torch.Tensor, levels: int) -> tuple[float, int]:
    """The scale and zero point that map `x`'s range (widened to hold 0) onto 0..`levels`, as
    `torch.quantize_per_tensor_dynamic` chooses them, from one pass over `x`."""
    low, high = (float(v) for v in torch.aminmax(x))
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / levels or 1.0
    return scale, min(levels, max(0, round(-low / scale)))


# The kernels, in order of preference: a later one is chosen only where it is faster here. oneDNN's
# first: it applies the activation and the residual as it writes its output, so it makes fewer
# passes over a bulk batch's wide tensors, which counts most when a worker's threads run batches
# side by side and share the caches, as a one-thread timing does not show (docs/performance.md).
KERNELS: tuple[type[Int8Linear], ...] = (OneDnnLinear, FbgemmLinear)


@dataclass(frozen=True, eq=False)
class Int8Layers:
    """The int8 copies of a model an encoder runs: `short` for a short request (up to
    `screening.SMALL_ROWS` token rows, as the head draws the line), `bulk` for bigger batches;
    one copy where one kernel is the faster at both."""

    short: BertMaskedLM
    bulk: BertMaskedLM


def _zeros(rows: torch.Tensor) -> torch.Tensor:
    """The weights' zero points: 0 for every row (symmetric)."""
    return torch.zeros(rows.shape[0], dtype=torch.long)


def activation_bits_of(kernel: type[Int8Linear]) -> int:
    """8 where `kernel`'s product sums u8 x s8 pairs exactly on this CPU, else 7: a probe whose
    every pair is 255 x 127 (an input at its range's top, weights at theirs), which an int16
    pair sum clips to 32,767 and an int32 one does not. Probed once per kernel and process."""
    if kernel in _BITS:
        return _BITS[kernel]
    width = 64
    linear = nn.Linear(width, 8)
    with torch.no_grad():
        linear.weight.fill_(1.0)
        linear.bias.zero_()
    rows = torch.ones(2, width)
    with torch.inference_mode():
        sums = kernel(linear, activation_bits=8)(rows)
    _BITS[kernel] = 8 if torch.allclose(sums, torch.full_like(sums, float(width)), rtol=1e-3) else 7
    return _BITS[kernel]


_BITS: dict[type[Int8Linear], int] = {}


def int8_layers(
    model: BertMaskedLM,
    activation_bits: int | None = None,
    kernel: type[Int8Linear] = FbgemmLinear,
    depth: int | None = None,
    rows: dict[Linear, torch.Tensor] | None = None,
) -> BertMaskedLM:
    """A copy of `model` whose encoder layers' linears are `kernel`s, every other tensor shared
    with `model`; `activation_bits` by default the kernel's on this CPU (`activation_bits_of`);
    `depth`: keep only that many first layers (to time a kernel on); `rows`: their int8 weights
    (`gptq_rows`), by default rounded to nearest. Raises RuntimeError where
    this torch build has no such quantized linear."""
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    quantized = copy.deepcopy(model, memo=shared)
    if depth is not None:
        quantized.layers = quantized.layers[:depth]
    for index, layer in enumerate(quantized.layers):
        for name in LAYER_LINEARS:
            weights = None if rows is None else rows[index, name]
            setattr(layer, name, kernel(getattr(layer, name), activation_bits, weights))
    return quantized


def kernel_of(layers: BertMaskedLM) -> Int8Linear:
    """The first int8 linear of `int8_layers`' output: which kernel, at how many bits."""
    linear = getattr(layers.layers[0], LAYER_LINEARS[0])
    assert isinstance(linear, Int8Linear)
    return linear


def layer_seconds(layers: BertMaskedLM, ids: torch.Tensor, lengths: torch.Tensor) -> float:
    """The best of three runs of `layers` on the packed texts, in this thread's CPU time, on one
    thread (what a worker runs)."""
    return one_thread_seconds(partial(layers.encode_packed, ids, lengths))


def gptq_rows(model: BertMaskedLM, scored: int) -> dict[Linear, torch.Tensor]:
    """The int8 rows of `model`'s encoder linears as int8 runs them: rounded by GPTQ
    (`int8_weights.compensated_rows`) on random texts of its first `scored` token ids."""
    length = min(MOMENT_LENGTH, model.config.max_position_embeddings)
    return compensated_rows(model, *sample_batch(scored, MOMENT_TEXTS, length))


def int8_refusal(exact_seconds: float, int8_seconds: float, timed: str = "the model's layers") -> str | None:
    """Why `int8` must not run, given the times of what was `timed` in fp32 and in int8 on the
    same rows; None where int8 is faster by enough (`MAX_INT8_SHARE`)."""
    if int8_seconds <= exact_seconds * MAX_INT8_SHARE:
        return None
    return (
        f"{REFUSED}: {timed} took {int8_seconds * 1e3:.1f} ms "
        f"in int8 against {exact_seconds * 1e3:.1f} ms in fp32 (int8 must take at most {MAX_INT8_SHARE:.0%} "
        "of that): use precision [exact]"
    )


def checked_int8_layers(
    model: BertMaskedLM, exact: BertMaskedLM, scored: int, seconds: Callable[..., float] = layer_seconds
) -> Int8Layers:
    """`int8_layers(model)` with the fastest of `KERNELS` for each kind of batch, on this model's
    own tokens: a short request (`SHORT_TEXTS`), and a bulk batch's rows through the first layer
    (`BULK_ROWS`); a later kernel only where it takes at most `SWITCH_SHARE` of an earlier one's
    time. ValueError naming the reason where the bulk choice does not run faster than `exact` (the
    layers `exact` would run) on a small batch (`SAMPLE_TEXTS`). Past that check, the chosen copies
    are built again with their weights rounded by GPTQ (`gptq_rows`), which
    changes what they compute and not their time. `seconds`: how a layers' time is taken
    (`layer_seconds`; tests inject one)."""
    short = sample_batch(scored, SHORT_TEXTS, SHORT_LENGTH)
    length = min(BULK_LENGTH, model.config.max_position_embeddings)
    bulk = sample_batch(scored, BULK_ROWS // length, length)

    def timed(kernel: type[Int8Linear]) -> tuple[BertMaskedLM, tuple[float, float]]:
        quantized = int8_layers(model, kernel=kernel)
        first_layer = int8_layers(model, kernel=kernel, depth=1)
        return quantized, (seconds(quantized, *short), seconds(first_layer, *bulk))

    short_best: tuple[BertMaskedLM, float] | None = None
    bulk_best: tuple[BertMaskedLM, float] | None = None
    for quantized, (short_took, bulk_took) in _each_kernel(timed):
        short_best = _preferred(short_best, quantized, short_took)
        bulk_best = _preferred(bulk_best, quantized, bulk_took)
    assert short_best is not None and bulk_best is not None  # _each_kernel raised where none ran
    ids, lengths = sample_batch(scored, SAMPLE_TEXTS, SAMPLE_LENGTH)
    refusal = int8_refusal(seconds(exact, ids, lengths), seconds(bulk_best[0], ids, lengths))
    if refusal:
        raise ValueError(refusal)
    # GPTQ's rounding takes seconds at BERT-base: only where int8 runs, once for both copies, and
    # one copy still where both kinds of batch chose the same kernel.
    rows = gptq_rows(model, scored)
    kernels = {kind: type(kernel_of(best[0])) for kind, best in (("short", short_best), ("bulk", bulk_best))}
    built = {kernel: int8_layers(model, kernel=kernel, rows=rows) for kernel in set(kernels.values())}
    layers = Int8Layers(short=built[kernels["short"]], bulk=built[kernels["bulk"]])
    # The head stays fp32: `exact`'s own, whose transform is packed where exact's linears are (the
    # plain one took 18.0 ms against 12.0 on 2,048 rows, 0.19 against 0.065 on 7: docs/performance.md).
    for chosen in built.values():
        chosen.head = exact.head
    return layers


def _preferred(best: tuple[T, float] | None, candidate: T, took: float) -> tuple[T, float]:
    """`(candidate, took)` over the `best` so far (an earlier kernel's) only where it takes at most
    `SWITCH_SHARE` of its time."""
    return (candidate, took) if best is None or took <= best[1] * SWITCH_SHARE else best


def machine_int8_refusal(seconds: Callable[[nn.Module, torch.Tensor], float] | None = None) -> str | None:
    """Why `int8` cannot pay on this machine at all, before any model is loaded (`elserve serve`
    checks it at start): one linear of BERT-base's feed-forward shape, fp32 against the fastest
    int8 kernel, on 128 rows. Each model is measured again on its own layers when it loads
    (`checked_int8_layers`)."""
    linear = nn.Linear(768, 3072)
    rows = torch.randn(128, 768, generator=torch.Generator().manual_seed(0))
    timed = seconds or _module_seconds
    try:
        times = [took for _, took in _each_kernel(lambda kernel: (None, timed(kernel(linear), rows)))]
    except ValueError as e:
        return str(e)
    return int8_refusal(timed(linear, rows), min(times), "a linear of BERT-base's shape")


def _each_kernel(run: Callable[[type[Int8Linear]], T]) -> Iterator[T]:
    """`run(kernel)` (what it built, and its times) for each of `KERNELS` in order, one at a time
    (a caller keeps only the copy it chooses), leaving out a kernel that this build or CPU lacks
    (building or running it raises); ValueError naming them all, at the end, where none ran."""
    ran, missing = 0, []
    for kernel in KERNELS:
        try:
            result = run(kernel)
        except (RuntimeError, NotImplementedError, AttributeError) as e:
            missing.append(f"{kernel.kernel}: {e}")
            continue
        ran += 1
        yield result
    if not ran:
        raise ValueError(_no_kernel(missing))


def _no_kernel(missing: list[str]) -> str:
    return (
        f"precision [int8] needs torch's quantized linear, which this build or CPU lacks ({'; '.join(missing)}): "
        "use precision [exact]"
    )


def _module_seconds(module: nn.Module, rows: torch.Tensor) -> float:
    return one_thread_seconds(partial(module, rows), runs=5)
