"""The screened head: the int8 screen never drops an entry that is positive, and the finish gives
the float64 head's weights to the last bit -- checked at the threshold itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from elserve.runtime import Encoder, Tokenizer
from elserve.runtime.bert import load_bert
from elserve.runtime.head import PLAIN, ExactHead, available_options
from elserve.runtime.products import KERNELS, ProductKernel, is_exact
from elserve.runtime.screening import QuantizedVocab, finish, screen, screened_pool, vocab_ranges
from elserve.runtime.splade import splade_pool
from tests.runtime.reference import dense
from tests.runtime.texts import VARIED_TEXTS
from tests.support.model_factory import build_bert_dir


def float64_head(rows: torch.Tensor, lengths: list[int], weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The unscreened head in float64, rounded once to fp32 before log1p(relu): what the
    screened head must equal bit for bit."""
    maxima = torch.stack([(part.double() @ weight.double().T).amax(dim=0) for part in rows.split(lengths)])
    return torch.log1p(torch.relu((maxima + bias.double()).float()))


@pytest.fixture(params=list(KERNELS))
def kernel_name(request: pytest.FixtureRequest) -> str:
    """Each product kernel; a test skips the ones that are not exact on this machine."""
    return request.param


@pytest.fixture(params=[False, True], ids=["blocks", "whole"])
def whole(request: pytest.FixtureRequest) -> bool:
    """The screen over vocabulary blocks (bulk batches) or in one product (short requests)."""
    return request.param


def build(
    weight: torch.Tensor, bias: torch.Tensor, name: str, centre: torch.Tensor | None = None, block: int = 64
) -> tuple[QuantizedVocab, ProductKernel]:
    """The vocabulary quantized for kernel `name`, and the kernel on it, with small vocabulary
    blocks by default (every text straddles several)."""
    levels, make = KERNELS[name]
    vocab = QuantizedVocab.build(weight, bias, centre, levels=levels)
    try:
        kernel = make(vocab.rows, vocab_ranges(vocab.size, block))
    except (RuntimeError, NotImplementedError, AttributeError):
        pytest.skip(f"{name} is missing on this machine")
    if not is_exact(kernel):
        pytest.skip(f"{name} is not exact on this machine")
    return vocab, kernel


def pool(
    rows: torch.Tensor, lengths: list[int], vocab: QuantizedVocab, kernel: ProductKernel, whole: bool = False
) -> torch.Tensor:
    """The screened head, dense; row blocks of 16 rows (every text straddles several)."""
    lengths_t = torch.tensor(lengths)
    text, entry = screen(rows, lengths_t, vocab, kernel, whole=whole, row_block=16)
    out = torch.zeros(len(lengths), vocab.size)
    out[text, entry] = finish(rows, lengths_t, vocab.weight, vocab.bias, text, entry)
    return out


def candidates(
    rows: torch.Tensor, lengths: list[int], vocab: QuantizedVocab, kernel: ProductKernel, whole: bool = False
) -> torch.Tensor:
    """The screen's verdict as a dense `(texts, vocab)` bool matrix."""
    text, entry = screen(rows, torch.tensor(lengths), vocab, kernel, whole=whole)
    out = torch.zeros(len(lengths), vocab.size, dtype=torch.bool)
    out[text, entry] = True
    return out


def _random_case(seed: int, lengths: list[int], vocab: int = 700, hidden: int = 48) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    # A shared direction plus spread, as real hidden states have; widely varying token norms.
    rows = (torch.randn(hidden, generator=g) * 3 + torch.randn(sum(lengths), hidden, generator=g)) * (
        torch.rand(sum(lengths), 1, generator=g) * 4 + 0.1
    )
    weight = torch.randn(vocab, hidden, generator=g) * 0.2
    bias = torch.randn(vocab, generator=g) - 2.0
    return rows, weight, bias


@pytest.mark.parametrize("seed", range(6))
def test_screened_head_equals_the_float64_head(seed: int, kernel_name: str, whole: bool) -> None:
    lengths = [1, 5, 2, 40, 9, 1, 17]
    rows, weight, bias = _random_case(seed, lengths)
    want = float64_head(rows, lengths, weight, bias)
    qv, kernel = build(weight, bias, kernel_name, centre=rows.mean(dim=0) if seed % 2 else None)
    got = screened_pool(rows, torch.tensor(lengths), qv, kernel)
    assert torch.equal(got, want)
    assert torch.equal(pool(rows, lengths, qv, kernel, whole), want)
    # The plain fp32 head agrees to its own rounding.
    torch.testing.assert_close(got, splade_pool(rows, torch.tensor(lengths), weight, bias), atol=1e-5, rtol=0)
    assert 0 < int((got > 0).sum()) < got.numel()


@pytest.mark.parametrize("seed", range(4))
def test_entries_at_the_threshold_come_out_as_the_exact_value_says(seed: int, kernel_name: str, whole: bool) -> None:
    # Every bias is set so that max_i h_i . w_j + b_j is -2, -1, 0, +1 or +2 units of 2^-24
    # (~6e-8), far inside the screen's error bound. The values are dyadic with few bits, so every
    # product and sum is exact in fp32 and float64 alike: the true sign is known.
    g = torch.Generator().manual_seed(100 + seed)
    lengths = [3, 1, 12, 6]
    hidden, vocab = 32, 260
    rows = torch.randint(-64, 65, (sum(lengths), hidden), generator=g).float() / 128  # k / 2^7
    weight = torch.randint(-64, 65, (vocab, hidden), generator=g).float() / 4096  # k / 2^12
    maxima = torch.stack([(part.double() @ weight.double().T).amax(dim=0) for part in rows.split(lengths)])
    text = seed % len(lengths)  # the text whose maxima set the biases
    steps = torch.arange(vocab) % 5 - 2
    bias = (-maxima[text] + steps.double() * 2.0**-24).float()
    assert torch.equal(bias.double(), -maxima[text] + steps.double() * 2.0**-24)  # exactly representable
    qv, kernel = build(weight, bias, kernel_name)
    passed = candidates(rows, lengths, qv, kernel, whole)
    got = pool(rows, lengths, qv, kernel, whole)
    exact = maxima + bias.double()
    assert torch.equal(exact[text], steps.double() * 2.0**-24)
    # +1 and +2 units are present (log1p keeps them positive in fp32), 0 and below are absent.
    assert torch.equal(got[text] > 0, steps > 0)
    assert torch.equal(got > 0, exact > 0)
    assert torch.equal(got, float64_head(rows, lengths, weight, bias))
    # The screen let every threshold entry of that text through, and it did drop others.
    assert bool(passed[text].all())
    assert not bool(passed.all())


def test_biases_inside_the_bound_on_every_side(kernel_name: str, whole: bool) -> None:
    # Biases spread uniformly over [-bound, +bound] around each text's exact maximum: the region
    # where only the finish can tell. Any entry the screen wrongly dropped would show up here.
    lengths = [7, 1, 30, 2]
    rows, weight, _ = _random_case(9, lengths, vocab=900)
    g = torch.Generator().manual_seed(10)
    maxima = torch.stack([(part.double() @ weight.double().T).amax(dim=0) for part in rows.split(lengths)])
    for text in range(len(lengths)):
        bias = (-maxima[text] + (torch.rand(900, generator=g, dtype=torch.float64) - 0.5) * 0.2).float()
        got = pool(rows, lengths, *build(weight, bias, kernel_name), whole)
        want = float64_head(rows, lengths, weight, bias)
        assert torch.equal(got, want)
        assert 200 < int((got[text] > 0).sum()) < 700


def test_many_short_texts(kernel_name: str) -> None:
    # More texts than rows per block.
    lengths = [1, 2, 3] * 30
    rows, weight, bias = _random_case(12, lengths)
    qv, kernel = build(weight, bias, kernel_name)
    want = float64_head(rows, lengths, weight, bias)
    assert torch.equal(pool(rows, lengths, qv, kernel), want)
    assert torch.equal(screened_pool(rows, torch.tensor(lengths), qv, kernel), want)


def test_degenerate_rows(kernel_name: str, whole: bool) -> None:
    # Identical tokens, a zero row, a lone token, huge and tiny norms, an all-zero text.
    hidden, vocab = 16, 300
    g = torch.Generator().manual_seed(3)
    same = torch.randn(hidden, generator=g).repeat(4, 1)
    rows = torch.cat(
        [
            same,
            torch.zeros(1, hidden),
            torch.randn(1, hidden, generator=g) * 1e4,
            torch.randn(3, hidden, generator=g) * 1e-6,
            torch.zeros(2, hidden),
        ]
    )
    lengths = [4, 1, 1, 3, 2]
    weight = torch.randn(vocab, hidden, generator=g)
    weight[5] = 0.0  # a zero decoder row: its logit is the bias alone
    bias = torch.randn(vocab, generator=g)
    qv, kernel = build(weight, bias, kernel_name, block=1)
    want = float64_head(rows, lengths, weight, bias)
    assert torch.equal(screened_pool(rows, torch.tensor(lengths), qv, kernel), want)
    assert torch.equal(pool(rows, lengths, qv, kernel, whole), want)


def test_a_text_gets_the_same_weights_in_any_batch_and_kernel() -> None:
    # The screen's centre and scales depend on the batch, its bound on the kernel's levels; the
    # weights depend on neither.
    lengths = [6, 11, 3, 25, 1]
    rows, weight, bias = _random_case(4, lengths)
    exact = [name for name, option in available_options(weight, bias, torch.zeros(weight.shape[1])).items() if option]
    assert "fp32-screen" in exact
    qv, kernel = build(weight, bias, "fp32-screen")
    together = screened_pool(rows, torch.tensor(lengths), qv, kernel)
    for name in exact:
        if name != PLAIN:
            assert torch.equal(screened_pool(rows, torch.tensor(lengths), *build(weight, bias, name)), together)
    for t, part in enumerate(rows.split(lengths)):
        assert torch.equal(screened_pool(part, torch.tensor([lengths[t]]), qv, kernel)[0], together[t])


def test_kernels_are_exact_at_the_extremes(kernel_name: str) -> None:
    # Rows and decoder rows at +-127 (or the kernel's levels), in sign patterns that overflow
    # int16 pair sums: the products must be the exact integers (2,064,512 at most: below 2^24).
    g = torch.Generator().manual_seed(5)
    hidden, levels = 128, KERNELS[kernel_name][0]
    decoder = torch.randint(-levels, levels + 1, (500, hidden), generator=g, dtype=torch.int8)
    decoder[:4] = torch.tensor([[levels], [-levels], [levels], [-levels]], dtype=torch.int8)
    decoder[2, 1::2] = -levels
    try:
        kernel = KERNELS[kernel_name][1](decoder, vocab_ranges(500, 128))
    except (RuntimeError, NotImplementedError, AttributeError):
        pytest.skip(f"{kernel_name} is missing on this machine")
    if not is_exact(kernel):
        pytest.skip(f"{kernel_name} is not exact on this machine")
    rows = torch.cat(
        [
            decoder[:4].sign() * 127,
            -decoder[:4].sign() * 127,
            torch.randint(-127, 128, (9, hidden), generator=g, dtype=torch.int8),
        ]
    )
    for v0, v1 in kernel.ranges:
        got = kernel.products(kernel.operand(rows), v0, v1)
        assert torch.equal(got.double(), rows.double() @ decoder[v0:v1].double().T)
    assert float(kernel.products(kernel.operand(rows), 0, 500).abs().max()) == 128 * 127 * levels


class _Saturating(ProductKernel):
    """What a u8 x s8 product without VNNI computes: pairs of byte products summed in int16,
    saturated (`vpmaddubsw`), then summed exactly. A test double of a kernel that is wrong on
    some machines, for `is_exact` to catch."""

    name, levels = "saturating", 127

    def products(self, operand: torch.Tensor, v0: int, v1: int, out: torch.Tensor | None = None) -> torch.Tensor:
        u = (operand.to(torch.int32) + 128)[:, None, :]
        p = self.rows[v0:v1].to(torch.int32)[None, :, :]
        pairs = (u * p).view(u.shape[0], p.shape[1], -1, 2).sum(dim=3).clamp_(-(2**15), 2**15 - 1)
        return (pairs.sum(dim=2) - 128 * p.sum(dim=2)).float()


def test_is_exact_refuses_a_saturating_kernel() -> None:
    g = torch.Generator().manual_seed(8)
    decoder = torch.randint(-127, 128, (300, 64), generator=g, dtype=torch.int8)
    assert not is_exact(_Saturating(decoder, vocab_ranges(300, 100)))
    # At 7 bits the same arithmetic cannot saturate: 2 x 255 x 63 < 2^15.
    seven = torch.randint(-63, 64, (300, 64), generator=g, dtype=torch.int8)
    assert is_exact(_Saturating(seven, vocab_ranges(300, 100)))


def test_the_encoder_picks_an_exact_option(splade_encoder: Encoder) -> None:
    model = splade_encoder.model
    options = available_options(model.decoder_weight, model.decoder_bias, model.head.norm.bias)
    exact = {name for name, option in options.items() if option is not None}
    assert {"fp32-screen", PLAIN} <= exact
    choice = splade_encoder._head.choice
    assert {choice.short, choice.bulk} <= exact
    assert splade_encoder.kernels["head_short"] == choice.short
    # Every option was timed, or marked as not exact here.
    for case in ("short", "bulk"):
        assert set(choice.seconds[case]) == set(options)
        assert all((choice.seconds[case][name] is None) == (name not in exact) for name in options)


def test_finish_of_no_candidates() -> None:
    rows, weight, bias = torch.ones(3, 4), torch.ones(6, 4), torch.zeros(6)
    none = torch.zeros(0, dtype=torch.long)
    assert finish(rows, torch.tensor([2, 1]), weight, bias, none, none).numel() == 0


def test_empty_batch_and_bad_lengths() -> None:
    qv, kernel = build(torch.zeros(5, 4), torch.zeros(5), "fp32-screen")
    assert screened_pool(torch.zeros(0, 4), torch.tensor([], dtype=torch.long), qv, kernel).shape == (0, 5)
    with pytest.raises(ValueError, match="at least one token"):
        screened_pool(torch.zeros(2, 4), torch.tensor([2, 0]), qv, kernel)
    with pytest.raises(ValueError, match="sum\\(lengths\\)"):
        screened_pool(torch.zeros(3, 4), torch.tensor([2]), qv, kernel)


# --- the real model ---


def _rows(encoder: Encoder, ids: list[np.ndarray]) -> torch.Tensor:
    """The rows the encoder's head sees for `ids`, grouped as `encode_ids` groups them."""
    lengths = np.array([len(x) for x in ids])
    with torch.inference_mode():
        groups = encoder._groups(lengths)
        return torch.cat([encoder._rows(ids[g.start : g.stop], lengths[g.start : g.stop]) for g in groups])


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """torch single-threaded, as the encoder's workers run the head: on a busy machine the
    intra-op threads' barriers make every call many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def real_rows(splade_encoder: Encoder) -> tuple[torch.Tensor, list[int], torch.Tensor, torch.Tensor]:
    """The rows the real model's head sees for the varied texts, their lengths, and the float64
    and plain fp32 heads' weights for them.

    The rows are computed on one thread, as the encoder's workers compute them: a multi-threaded
    sgemm may sum in another order (MKL's AVX2 kernels do), and the head is exact only on the
    rows it is given."""
    ids = [e.ids for e in splade_encoder.tokenize(VARIED_TEXTS)]
    lengths = [len(x) for x in ids]
    model = splade_encoder.model
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = _rows(splade_encoder, ids)
    want = float64_head(rows, lengths, model.decoder_weight, model.decoder_bias)
    plain = splade_pool(rows, torch.tensor(lengths), model.decoder_weight, model.decoder_bias)
    torch.set_num_threads(before)
    return rows, lengths, want, plain


def _assert_within_rounding(got: torch.Tensor, want: torch.Tensor) -> None:
    """The plain fp32 head differs by its own rounding only; so does its non-zero set, by entries
    within that rounding of zero."""
    assert float((got - want).abs().max()) < 1e-5
    differ = (got > 0) != (want > 0)
    assert bool((torch.maximum(got, want)[differ] < 1e-5).all())


def test_real_model_equals_float64_head_and_fp32_head(splade_encoder: Encoder, real_rows: tuple) -> None:
    _rows, _lengths, want, plain = real_rows
    ids = [e.ids for e in splade_encoder.tokenize(VARIED_TEXTS)]
    got = torch.from_numpy(np.stack([dense(v, want.shape[1]) for v in splade_encoder.encode_ids(ids)]))
    if splade_encoder.kernels["head_bulk"] != PLAIN:
        assert torch.equal(got, want)
    _assert_within_rounding(got, plain)


@pytest.mark.parametrize("option", [*KERNELS, PLAIN])
def test_every_head_option_on_the_real_model(splade_encoder: Encoder, real_rows: tuple, option: str) -> None:
    # Each option for every batch, bulk and short: the float64 head's weights to the last bit
    # (the plain one: within its rounding).
    rows, lengths, want, plain = real_rows
    model = splade_encoder.model
    try:
        head = ExactHead(model.decoder_weight, model.decoder_bias, model.head.norm.bias, rows[:32], only=option)
    except ValueError:
        pytest.skip(f"{option} is not exact on this machine")
    text, entry, weight = head.pool(rows, torch.tensor(lengths))
    got = torch.zeros_like(want)
    got[text, entry] = weight
    for t, part in enumerate(rows.split(lengths)[:12]):  # short requests: the whole-vocabulary product
        text, entry, weight = head.pool(part, torch.tensor([lengths[t]]))
        alone = torch.zeros(want.shape[1])
        alone[entry] = weight
        assert bool((text == 0).all())
        if option != PLAIN:
            assert torch.equal(alone, want[t])
        _assert_within_rounding(alone, want[t])
    if option != PLAIN:
        assert torch.equal(got, want)
    _assert_within_rounding(got, plain if option != PLAIN else want)


def test_a_split_batch_agrees_with_texts_alone(splade_encoder: Encoder) -> None:
    # The whole list is one batch of ~6,900 tokens, which the workers split between them; then
    # the same texts one by one. Only the layers' fp32 kernels, picked by shape, may differ in
    # the last bits.
    ids = [e.ids for e in splade_encoder.tokenize(VARIED_TEXTS)]
    assert len(splade_encoder._groups(np.array([len(x) for x in ids]))) == splade_encoder._workers.size == 2
    together = splade_encoder.encode_ids(ids)
    for vector, one in zip(together, ids, strict=True):
        (alone,) = splade_encoder.encode_ids([one])
        assert float(np.abs(dense(vector, 30522) - dense(alone, 30522)).max()) < 1e-5


@pytest.mark.parametrize("levels", ["onednn-u8s8", "onednn-u8s7"])
def test_real_model_screen_is_tight(splade_encoder: Encoder, real_rows: tuple, levels: str) -> None:
    # The bound with 8-bit and with 7-bit decoder rows (computed by the fp32 kernel: exact anywhere).
    rows, lengths, _, _ = real_rows
    lengths = torch.tensor(lengths)
    model = splade_encoder.model
    vocab = QuantizedVocab.build(model.decoder_weight, model.decoder_bias, model.head.norm.bias, KERNELS[levels][0])
    kernel = KERNELS["fp32-screen"][1](vocab.rows, vocab_ranges(vocab.size))
    passed = candidates(rows, lengths.tolist(), vocab, kernel)
    positive = screened_pool(rows, lengths, vocab, kernel) > 0
    assert bool(passed[positive].all())
    # About 1% of entries survive, ~2x the positive ones (measured 1.0% on the corpus).
    assert float(passed.float().mean()) < 0.02
    assert int(passed.sum()) < 3 * int(positive.sum())


def test_real_model_entries_at_the_threshold(splade_model_dir: Path, kernel_name: str) -> None:
    # Biases one fp32 step either side of a text's exact maxima: the true logit is then within
    # one step of zero (~1e-7 for these magnitudes) and its sign is that of the step.
    model = load_bert(splade_model_dir)
    tokenizer = Tokenizer.from_dir(splade_model_dir)
    texts = ["what is learned sparse retrieval", "a", "Elasticsearch is a distributed search engine"]
    ids = [e.ids for e in tokenizer.encode_batch(texts)]
    rows = _rows(Encoder(model, tokenizer), ids)
    target = 2  # the text whose maxima set the biases
    lengths = [len(x) for x in ids]
    maxima = torch.stack([(p.double() @ model.decoder_weight.double().T).amax(0) for p in rows.split(lengths)])
    chosen = torch.arange(0, 30000, 97)  # 310 entries across the vocabulary
    below = -maxima[target][chosen].float()  # the fp32 number nearest -max
    side = torch.where(torch.arange(len(chosen)) % 2 == 0, 1.0, -1.0)
    # One fp32 step from `below`, away from -max: the sign of max + b is then that of `side`.
    nudged = torch.nextafter(below, below + side)
    bias = model.decoder_bias.detach().clone()
    bias[chosen] = nudged
    exact_value = maxima[target][chosen] + nudged.double()
    assert torch.equal(exact_value > 0, side > 0)
    with torch.no_grad():
        model.head.bias.copy_(bias)
    try:
        encoder = Encoder(model, tokenizer, head=kernel_name)
    except ValueError:
        pytest.skip(f"{kernel_name} is not exact on this machine")
    got = dense(encoder.encode_ids(ids)[target], 30522)
    present = torch.from_numpy(got[chosen.numpy()] > 0)
    assert torch.equal(present, side > 0)
    assert torch.equal(torch.from_numpy(got), float64_head(rows, lengths, model.decoder_weight, bias)[target])


def test_factory_model_threshold_through_the_encoder(tmp_path: Path) -> None:
    # The same at the threshold with a small random model, every entry of one text nudged.
    model_dir = build_bert_dir(tmp_path / "model")
    model = load_bert(model_dir)
    tokenizer = Tokenizer.from_dir(model_dir)
    ids = [e.ids for e in tokenizer.encode_batch(["w1 w2 w3 a b c", "x", "hello world e.g"])]
    rows = _rows(Encoder(model, tokenizer), ids)
    lengths = [len(x) for x in ids]
    maxima = torch.stack([(p.double() @ model.decoder_weight.double().T).amax(0) for p in rows.split(lengths)])
    below = -maxima[0].float()
    side = torch.where(torch.arange(below.numel()) % 2 == 0, 1.0, -1.0)
    bias = torch.nextafter(below, below + side)
    with torch.no_grad():
        model.head.bias.copy_(bias)
    # (A screened head: on so small a vocabulary the machine may well pick the plain one.)
    vectors = Encoder(model, tokenizer, head="fp32-screen").encode_ids(ids)
    got = torch.from_numpy(dense(vectors[0], below.numel()))
    assert torch.equal(got > 0, side > 0)
    assert torch.equal(got, float64_head(rows, lengths, model.decoder_weight, bias)[0])
