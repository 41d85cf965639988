"""The opt-in int8 layers: refused where they do not pay, and the fidelity they state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from elserve.bench.base_model import bert_init
from elserve.runtime import Encoder, SparseVector
from elserve.runtime.agreement import agreement, fidelity, held_out_queries, ranking_agreement
from elserve.runtime.bert import _activation, load_bert
from elserve.runtime.config import ACTIVATIONS
from elserve.runtime.cpu import cpu_flags
from elserve.runtime.int8 import (
    KERNELS,
    FbgemmLinear,
    Int8Linear,
    OneDnnLinear,
    activation_bits_of,
    checked_int8_layers,
    gptq_rows,
    int8_layers,
    int8_refusal,
    kernel_of,
    machine_int8_refusal,
)
from elserve.runtime.screening import SMALL_ROWS
from tests.runtime.texts import VARIED_TEXTS
from tests.support.model_factory import build_bert_dir


def test_int8_is_refused_unless_clearly_faster() -> None:
    assert int8_refusal(exact_seconds=0.010, int8_seconds=0.004) is None
    refusal = int8_refusal(exact_seconds=0.010, int8_seconds=0.0095)
    assert refusal is not None
    assert "precision [int8] is not faster than [exact] on this CPU" in refusal
    assert "9.5 ms in int8 against 10.0 ms in fp32" in refusal and "use precision [exact]" in refusal


def test_a_model_whose_int8_layers_are_slower_is_refused_at_load(tmp_path: Path) -> None:
    """The lesser path, by an injected measurement (a CPU without a fast int8 product)."""
    model = load_bert(build_bert_dir(tmp_path, layers=1, hidden=64, heads=4))

    def int8_slower(layers: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> float:
        return 0.003 if isinstance(layers.layers[0].qkv, Int8Linear) else 0.002

    with pytest.raises(
        ValueError, match=r"precision \[int8\] is not faster than \[exact\].*3\.0 ms in int8 against 2\.0 ms"
    ):
        checked_int8_layers(model, model, model.config.vocab_size, seconds=int8_slower)
    kept = checked_int8_layers(
        model, model, model.config.vocab_size, seconds=lambda layers, *_: 1.0 if layers is model else 0.1
    )
    assert kept.short is kept.bulk  # one kernel the faster at both: one copy
    assert isinstance(kept.bulk.layers[0].output, Int8Linear)
    assert isinstance(model.layers[0].output, torch.nn.Linear)  # the exact model is left as it was
    assert kept.bulk.embeddings.word.weight is model.embeddings.word.weight  # shared, not copied
    assert machine_int8_refusal(seconds=lambda module, rows: 0.003 if isinstance(module, Int8Linear) else 0.002)
    assert machine_int8_refusal(seconds=lambda module, rows: 0.001 if isinstance(module, Int8Linear) else 0.002) is None


def test_the_int8_layers_run_the_exact_layers_head(tmp_path: Path) -> None:
    """The head stays fp32 in int8, and is exact's: its transform packed where exact's linears are
    (a 512-wide transform is big enough to be packed), so int8's transform gives exact's to the bit."""
    model = load_bert(build_bert_dir(tmp_path, layers=1, hidden=512, heads=8))
    exact = model.with_packed_linears()
    chosen = checked_int8_layers(
        model, exact, model.config.vocab_size, seconds=lambda layers, *_: 1.0 if layers is exact else 0.1
    )
    hidden = torch.randn(7, 512, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for layers in (chosen.short, chosen.bulk):
            assert isinstance(kernel_of(layers), Int8Linear)
            assert torch.equal(layers.transform(hidden), exact.transform(hidden))


def test_the_faster_kernel_is_kept_and_an_earlier_one_wins_a_near_tie(tmp_path: Path) -> None:
    model = load_bert(build_bert_dir(tmp_path, layers=1, hidden=64, heads=4))

    def timed(fbgemm: float, onednn: float) -> type[Int8Linear]:
        def seconds(layers: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> float:
            if layers is model:
                return 1.0  # exact
            return fbgemm if isinstance(kernel_of(layers), FbgemmLinear) else onednn

        return type(kernel_of(checked_int8_layers(model, model, model.config.vocab_size, seconds=seconds).bulk))

    assert timed(fbgemm=0.4, onednn=0.2) is OneDnnLinear
    assert timed(fbgemm=0.2, onednn=0.4) is FbgemmLinear
    assert timed(fbgemm=0.36, onednn=0.4) is OneDnnLinear  # 90%: within the noise a switch must beat


def test_short_requests_and_bulk_batches_each_keep_their_faster_kernel(tmp_path: Path) -> None:
    """Kernels that part between a short text and a bulk batch (oneDNN's ran a short text 2.5x as
    slow as fbgemm's and a bulk batch faster, AVX2 on a Xeon): each kind of batch keeps its own."""
    model = load_bert(build_bert_dir(tmp_path, layers=1, hidden=64, heads=4))

    def seconds(layers: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> float:
        if layers is model:
            return 1.0  # exact
        short = ids.shape[0] <= SMALL_ROWS
        return 0.1 if isinstance(kernel_of(layers), FbgemmLinear) == short else 0.25

    chosen = checked_int8_layers(model, model, model.config.vocab_size, seconds=seconds)
    assert isinstance(kernel_of(chosen.short), FbgemmLinear)
    assert isinstance(kernel_of(chosen.bulk), OneDnnLinear)
    assert len(chosen.bulk.layers) == len(model.layers)  # timed on one layer, built whole


def test_a_short_request_runs_the_short_layers_and_a_bigger_batch_the_bulk_ones(tmp_path: Path) -> None:
    """Routing by the batch's rows (`SMALL_ROWS`, the head's line): with exact layers for short
    requests and int8 ones in bulk, a short text alone comes out exact and in a big batch not."""
    model_dir = build_bert_dir(tmp_path, layers=1, hidden=64, heads=4)
    exact = Encoder.load(model_dir, num_threads=1)
    routed = Encoder.load(model_dir, num_threads=1)
    assert isinstance(exact, Encoder) and isinstance(routed, Encoder)
    routed._layers = int8_layers(routed.model)  # bulk only; short requests keep the exact layers
    texts = [t for t in VARIED_TEXTS if t.strip()]
    ids = [np.asarray(e.ids) for e in exact.tokenize(texts)]
    short = next(i for i in ids if len(i) <= SMALL_ROWS // 2)
    batch = [short, *[i for i in ids if i is not short]]
    assert sum(len(i) for i in batch) > SMALL_ROWS

    want = [exact.encode_ids([short])[0]]
    assert agreement(want, [routed.encode_ids([short])[0]]).max_abs_diff <= 1e-5
    assert agreement(want, [routed.encode_ids(batch)[0]]).max_abs_diff > 1e-4


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.kernel)
def test_a_kernel_fuses_the_activation_and_the_residual_with_the_same_outputs(
    kernel: type[Int8Linear], act: str
) -> None:
    generator = torch.Generator().manual_seed(4)
    linear = torch.nn.Linear(96, 160)
    with torch.no_grad():
        linear.weight.normal_(0, 0.02, generator=generator)
        linear.bias.normal_(0, 0.02, generator=generator)
    int8 = kernel(linear)
    rows, residual = torch.randn(21, 96, generator=generator), torch.randn(21, 160, generator=generator)
    with torch.inference_mode():
        apart = int8(rows)
        torch.testing.assert_close(int8.activated(rows, act), _activation(act, apart), atol=1e-6, rtol=0)
        assert torch.equal(int8.plus(rows, residual), residual + apart)
        none = rows[:0]  # no rows: nothing to quantize by, and nothing to answer
        assert int8.activated(none, act).shape == (0, 160) and int8.plus(none, residual[:0]).shape == (0, 160)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: k.kernel)
def test_the_product_sums_exactly_at_the_activation_bits_chosen(kernel: type[Int8Linear]) -> None:
    """Weights and inputs already on the int8 grids: each quantized linear must give the exact
    integer sums, which a saturating int16 pair sum would not (the probe's reason)."""
    bits = activation_bits_of(kernel)
    assert bits in (7, 8)
    levels = 2**bits - 1
    generator = torch.Generator().manual_seed(3)
    linear = torch.nn.Linear(256, 64)
    with torch.no_grad():
        linear.weight.copy_(torch.randint(-127, 128, (64, 256), generator=generator).float())
        linear.weight[:, 0] = 127  # every row's scale is exactly 1
        linear.bias.zero_()
    rows = torch.randint(0, levels + 1, (4, 256), generator=generator).float()
    rows[:, 0], rows[:, 1] = 0, levels  # the input's range is 0..levels: its scale is exactly 1
    rows[0, :] = levels  # the saturating case: every pair at the top of both ranges
    rows[0, 0] = 0
    with torch.inference_mode():
        got = kernel(linear)(rows)
    want = rows.double() @ linear.weight.double().t()
    assert torch.equal(got.double(), want)


@pytest.mark.skipif("avx2" not in cpu_flags(), reason="the AVX2 kernels need an AVX2 CPU")
@pytest.mark.parametrize(
    ("kernel", "cap"),
    [("FbgemmLinear", {"FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"}), ("OneDnnLinear", {"ONEDNN_MAX_CPU_ISA": "AVX2"})],
)
def test_a_saturating_product_gets_7_bit_activations(kernel: str, cap: dict[str, str]) -> None:
    """fbgemm or oneDNN capped at AVX2 sums u8 x s8 pairs in int16 (`vpmaddubsw`): the probe must see it."""
    probe = f"from elserve.runtime.int8 import activation_bits_of, {kernel}; print(activation_bits_of({kernel}))"
    done = subprocess.run(
        [sys.executable, "-c", probe], env=os.environ | cap, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "7"


def test_int8_layers_stay_close_to_fp32_and_the_kernels_agree(tmp_path: Path) -> None:
    model = load_bert(build_bert_dir(tmp_path, layers=2, hidden=256, heads=4, init=bert_init(256)))
    lengths = torch.tensor([1, 30, 17])
    ids = torch.randint(5, model.config.vocab_size, (int(lengths.sum()),), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        want = model.transform(model.encode_packed(ids, lengths))
    for kernel in KERNELS:
        bits = activation_bits_of(kernel)
        quantized = int8_layers(model, kernel=kernel)
        with torch.inference_mode():
            got = quantized.transform(quantized.encode_packed(ids, lengths))
        relative = float((got - want).norm() / want.norm())
        assert 0 < relative < 0.05, kernel  # an approximation, and a close one
        if bits == 8:
            with torch.inference_mode():
                seven = int8_layers(model, activation_bits=7, kernel=kernel)
                coarser = seven.transform(seven.encode_packed(ids, lengths))
            assert relative < float((coarser - want).norm() / want.norm()), kernel
    # The same quantized input and integer sums by either kernel, at the same width: one linear's
    # rows are the same but for the fp32 rounding of scaling them back. (Through layers that
    # rounding can flip the next layer's input quantization, so whole encoders differ a little more,
    # by how much depends on the CPU's fp32 kernels.)
    linear = model.layers[0].intermediate
    rows = torch.randn(64, linear.in_features, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        first, *others = (kernel(linear, activation_bits=7)(rows) for kernel in KERNELS)
    for other in others:
        assert float((other - first).norm() / first.norm()) < 1e-4


def test_ranking_agreement_counts_shared_top_passages() -> None:
    def v(pairs: dict[int, float]) -> SparseVector:
        ordered = sorted(pairs.items(), key=lambda kv: -kv[1])
        return SparseVector(np.array([k for k, _ in ordered], np.int32), np.array([w for _, w in ordered], np.float32))

    passages = [v({i: 1.0, 100: i / 10}) for i in range(12)]
    queries = [v({100: 1.0})]
    assert ranking_agreement(passages, queries, passages, queries) == (1.0, 1.0)
    # The other encoder swaps the best passage for the worst: 9 of the top 10 still shared.
    swapped = [*passages[:11], v({11: 1.0, 100: 0.0})]
    swapped[0] = v({0: 1.0, 100: 1.15})
    assert ranking_agreement(passages, queries, swapped, queries) == (0.9, 0.9)


def test_int8_fidelity_by_the_benchmarks_measurement(tmp_path: Path) -> None:
    """A test-sized run of what `elserve bench` states for int8: top-20 overlap, largest weight
    difference, top-10 ranking agreement of passages against held-out queries."""
    model_dir = build_bert_dir(tmp_path, layers=1, hidden=768, heads=12, intermediate=3072, init=bert_init(768))
    exact = Encoder.load(model_dir, num_threads=1)
    try:
        approx = Encoder.load(model_dir, num_threads=1, precision="int8")
    except ValueError as e:  # a CPU where int8 does not pay (the refusal is tested above)
        pytest.skip(str(e))
    assert approx.kernels["layers"] in {f"int8-{k.kernel}" for k in KERNELS}
    passages, queries = held_out_queries([t for t in VARIED_TEXTS if t.strip()], 20)
    found = fidelity(exact, approx, passages, queries)
    assert found.passages.texts == len(passages) and found.queries == 20 and found.rank_k == 10
    assert 0 < found.passages.max_abs_diff < 0.5
    assert found.passages.overlap_mean >= 0.8
    assert 0.5 <= found.ranking_mean <= 1.0 and found.ranking_min <= found.ranking_mean


def test_int8_fidelity_on_the_real_model(splade_model_dir: Path) -> None:
    """The real SPLADE-tiny weights through int8 layers of either activation width (measured
    whether or not they pay on this CPU: SPLADE-tiny's layers are too small to), against exact,
    by the benchmark's measurement."""
    exact = Encoder.load(splade_model_dir, num_threads=1)
    approx = Encoder.load(splade_model_dir, num_threads=1)
    assert isinstance(approx, Encoder)
    passages, queries = held_out_queries([t for t in VARIED_TEXTS if t.strip()], 20)
    # The weights as int8 runs them: rounded by GPTQ.
    rows = gptq_rows(approx.model, len(approx.tokenizer.vocab))
    # 8 bits only where the product sums them exactly; the 7-bit floors leave room for 8-bit's.
    for bits in (7, 8)[: 1 + (activation_bits_of(FbgemmLinear) == 8)]:
        # Past the speed check, for short and bulk batches alike.
        approx._layers = approx._short_layers = int8_layers(approx.model, activation_bits=bits, rows=rows)
        found = fidelity(exact, approx, passages, queries)
        assert found.passages.overlap_mean >= (0.955 if bits == 7 else 0.965), bits
        assert 0 < found.passages.max_abs_diff < (0.6 if bits == 7 else 0.3), bits
        assert found.ranking_mean >= 0.94, bits


def test_int8_unpadded_rows_agree_with_padded_and_with_each_text_alone(tmp_path: Path) -> None:
    """int8 runs unpadded. Its activation scale is the batch's, so a text's rows move a little with
    its batch-mates (and padding rows would take part in a padded batch's scale): within the
    approximation, not bitwise. A single text without padding is the same batch either way."""
    model = load_bert(build_bert_dir(tmp_path, layers=2, hidden=256, heads=4, max_positions=512, init=bert_init(256)))
    quantized = int8_layers(model)
    lengths = torch.tensor([1, 512, 37])
    ids = torch.randint(5, model.config.vocab_size, (int(lengths.sum()),), generator=torch.Generator().manual_seed(4))
    texts = list(ids.split(lengths.tolist()))
    padded_ids = torch.nn.utils.rnn.pad_sequence(texts, batch_first=True)
    real = torch.arange(padded_ids.shape[1]) < lengths[:, None]

    def relative(got: torch.Tensor, want: torch.Tensor) -> float:
        return float((got - want).norm() / want.norm())

    with torch.inference_mode():
        exact = model.encode_packed(ids, lengths)
        unpadded = quantized.encode_packed(ids, lengths)
        padded = quantized.encode(padded_ids, lengths)[real]
        alone = torch.cat([quantized.encode_packed(t, torch.tensor([len(t)])) for t in texts])
        single = quantized.encode_packed(texts[1], lengths[1:2])
        single_padded = quantized.encode(texts[1][None], lengths[1:2])[0]
    assert 0 < relative(unpadded, exact) < 0.02
    assert relative(padded, unpadded) < 0.02 and relative(alone, unpadded) < 0.02
    assert relative(single_padded, single) < 1e-3
