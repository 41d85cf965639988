"""The opt-in `int8` layers: int8 weights and dynamically quantized int8 activations.

Each linear of the encoder layers keeps its weight as int8 with one scale per output row
(symmetric, 127 levels each side), and quantizes its input on the fly to unsigned integers with
one scale and zero point for the batch's rows (torch's dynamic quantized linear, fbgemm's kernel
on x86-64). The input gets all 8 bits where the CPU's int8 product sums u8 x s8 pairs without
saturating (VNNI's `vpdpbusd` adds them into int32), and 7 bits where it would saturate: AVX2's
`vpmaddubsw` adds pairs into int16, which 255 x 127 x 2 overflows and 127 x 127 x 2 does not.
Which one a CPU has is probed once, on the kernel itself (`activation_bits_of_this_cpu`), not
read from flags: fbgemm picks its instruction set on its own (`FBGEMM_ENABLE_INSTRUCTIONS` caps
it). Either way the integer sums are exact, so a CPU changes only the input's resolution, never
the arithmetic.
Everything else stays fp32: embeddings, attention, LayerNorms, the head's transform and the exact
vocabulary head, which then pools the approximate rows exactly.

An activation scale shared by the batch means a text's vector can move slightly with the other
texts of its batch (within the agreement that `precision int8` states). Whether int8 runs at all
is measured at load (`int8_refusal`): on a CPU whose int8 product is no faster than its fp32 one
it is refused with the two timings.
"""

from __future__ import annotations

import copy
import functools
import time
import warnings
from collections.abc import Callable

import torch
from torch import nn

from elserve.runtime.bert import LAYER_LINEARS, BertMaskedLM

# int8 must take at most this share of exact's time on the sample to be allowed at all: an
# approximation that is not clearly faster has no reason to run.
MAX_INT8_SHARE = 0.9
# How every refusal of int8 for speed begins (the benchmark tells a refusal from a failure by it).
REFUSED = "precision [int8] is not faster than [exact] on this CPU"
# The sample the layers are timed on at load: a few texts, as a small bulk batch holds them.
SAMPLE_TEXTS, SAMPLE_LENGTH = 4, 32


class Int8Linear(nn.Module):
    """A `Linear` with int8 weights (a scale per output row) and dynamic activations of
    `activation_bits` bits (8, or 7 where 8 would saturate: see the module's docstring)."""

    def __init__(self, linear: nn.Module, activation_bits: int | None = None) -> None:
        super().__init__()
        bits = activation_bits or activation_bits_of_this_cpu()
        if bits not in (7, 8):
            raise ValueError(f"activation bits must be 7 or 8, got [{bits}]")
        self.activation_bits = bits
        weight, bias = linear.weight, linear.bias
        assert isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor)
        self._packed = _prepack(weight.detach().float(), bias.detach().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # reduce_range: the input quantized to 0..127 instead of 0..255.
        return torch.ops.quantized.linear_dynamic(x, self._packed, self.activation_bits == 7)


def _prepack(weight: torch.Tensor, bias: torch.Tensor | None) -> object:
    """`weight` as int8 with a symmetric scale per output row, packed for fbgemm with `bias`."""
    scales = (weight.abs().amax(dim=1) / 127).clamp_min(torch.finfo(torch.float32).tiny).double()
    zeros = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():
        # Quantized tensors are flagged for removal in a later torch; this one (pinned) has them.
        warnings.filterwarnings("ignore", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        quantized = torch.quantize_per_channel(weight, scales, zeros, 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(quantized, bias)


@functools.cache
def activation_bits_of_this_cpu() -> int:
    """8 where the quantized linear's product sums u8 x s8 pairs exactly, else 7: a probe whose
    every pair is 255 x 127 (an input at its range's top, weights at theirs), which an int16
    pair sum clips to 32,767 and an int32 one does not."""
    width = 64
    packed = _prepack(torch.ones(8, width), None)
    rows = torch.ones(2, width)
    with torch.inference_mode():
        sums = torch.ops.quantized.linear_dynamic(rows, packed, False)
    return 8 if torch.allclose(sums, torch.full_like(sums, float(width)), rtol=1e-3) else 7


def int8_layers(model: BertMaskedLM, activation_bits: int | None = None) -> BertMaskedLM:
    """A copy of `model` whose encoder layers' linears are `Int8Linear`s, every other tensor
    shared with `model`; `activation_bits` by default this CPU's (`activation_bits_of_this_cpu`).
    Raises RuntimeError where this torch build has no quantized linear."""
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    quantized = copy.deepcopy(model, memo=shared)
    for layer in quantized.layers:
        for name in LAYER_LINEARS:
            setattr(layer, name, Int8Linear(getattr(layer, name), activation_bits))
    return quantized


def layer_seconds(layers: BertMaskedLM, ids: torch.Tensor, lengths: torch.Tensor) -> float:
    """The best of three runs of `layers` on the packed texts, in this thread's CPU time, on one
    thread (what a worker runs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            layers.encode_packed(ids, lengths)  # warm
            times = []
            for _ in range(3):
                started = time.thread_time()
                layers.encode_packed(ids, lengths)
                times.append(time.thread_time() - started)
    finally:
        torch.set_num_threads(threads)
    return min(times)


def sample_batch(scored: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`SAMPLE_TEXTS` texts of `SAMPLE_LENGTH` ids below `scored`, packed: `(ids, lengths)`."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(min(1000, scored // 2), scored, (SAMPLE_TEXTS * SAMPLE_LENGTH,), generator=generator)
    return ids, torch.full((SAMPLE_TEXTS,), SAMPLE_LENGTH)


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
) -> BertMaskedLM:
    """`int8_layers(model)` where they run faster than `exact` (the layers `exact` would run) on
    a sample of this model's own tokens; ValueError naming the reason otherwise. `seconds`: how
    a layers' time is taken (`layer_seconds`; tests inject one)."""
    try:
        quantized = int8_layers(model)
    except (RuntimeError, NotImplementedError, AttributeError) as e:
        raise ValueError(
            f"precision [int8] needs torch's quantized linear, which this build or CPU lacks ({e}): "
            "use precision [exact]"
        ) from e
    ids, lengths = sample_batch(scored)
    refusal = int8_refusal(seconds(exact, ids, lengths), seconds(quantized, ids, lengths))
    if refusal:
        raise ValueError(refusal)
    return quantized


def machine_int8_refusal(seconds: Callable[[nn.Module, torch.Tensor], float] | None = None) -> str | None:
    """Why `int8` cannot pay on this machine at all, before any model is loaded (`elserve serve`
    checks it at start): one linear of BERT-base's feed-forward shape, fp32 against int8, on 128
    rows. Each model is measured again on its own layers when it loads (`checked_int8_layers`)."""
    linear = nn.Linear(768, 3072)
    rows = torch.randn(128, 768, generator=torch.Generator().manual_seed(0))
    try:
        quantized = Int8Linear(linear)
    except (RuntimeError, NotImplementedError, AttributeError) as e:
        return (
            f"precision [int8] needs torch's quantized linear, which this build or CPU lacks ({e}): "
            "use precision [exact]"
        )
    timed = seconds or _module_seconds
    return int8_refusal(timed(linear, rows), timed(quantized, rows), "a linear of BERT-base's shape")


def _module_seconds(module: nn.Module, rows: torch.Tensor) -> float:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            module(rows)
            times = []
            for _ in range(5):
                started = time.thread_time()
                module(rows)
                times.append(time.thread_time() - started)
    finally:
        torch.set_num_threads(threads)
    return min(times)
