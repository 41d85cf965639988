"""The screened head: the int8 screen never drops an entry that is positive, and the finish gives
the float64 head's weights to the last bit -- checked at the threshold itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from elserve.runtime import Encoder, Tokenizer
from elserve.runtime.bert import load_bert
from elserve.runtime.screening import PackedVocab, QuantizedVocab, finish, screen, screened_pool
from elserve.runtime.splade import splade_pool
from tests.model_factory import build_bert_dir
from tests.runtime.reference import dense
from tests.runtime.texts import VARIED_TEXTS


def float64_head(rows: torch.Tensor, lengths: list[int], weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The unscreened head in float64, rounded once to fp32 before log1p(relu): what the
    screened head must equal bit for bit."""
    maxima = torch.stack([(part.double() @ weight.double().T).amax(dim=0) for part in rows.split(lengths)])
    return torch.log1p(torch.relu((maxima + bias.double()).float()))


# The screen's two kernels: `_int_mm` over blocks, and the packed product of short requests.
KERNELS = {"blocks": 0, "packed": 10**9}
# Tests that run the packed kernel need a CPU that has it (see `PackedVocab`).
HAS_PACKED = PackedVocab.build(torch.ones(3, 4, dtype=torch.int8)) is not None


@pytest.fixture(params=list(KERNELS))
def small_rows(request: pytest.FixtureRequest) -> int:
    """`screen`'s `small_rows` that picks each kernel for any batch."""
    if request.param == "packed" and not HAS_PACKED:
        pytest.skip("this CPU has no exact packed int8 kernel (no VNNI)")
    return KERNELS[request.param]


def pool(
    rows: torch.Tensor, lengths: list[int], vocab: QuantizedVocab, block_elements: int = 4096, small_rows: int = 0
) -> torch.Tensor:
    """The screened head, dense; by default with small screen blocks (every text straddles several)."""
    lengths_t = torch.tensor(lengths)
    text, entry = screen(rows, lengths_t, vocab, row_block=16, block_elements=block_elements, small_rows=small_rows)
    out = torch.zeros(len(lengths), vocab.size)
    out[text, entry] = finish(rows, lengths_t, vocab.weight, vocab.bias, text, entry)
    return out


def candidates(rows: torch.Tensor, lengths: list[int], vocab: QuantizedVocab, small_rows: int = 0) -> torch.Tensor:
    """The screen's verdict as a dense `(texts, vocab)` bool matrix."""
    text, entry = screen(rows, torch.tensor(lengths), vocab, small_rows=small_rows)
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
def test_screened_head_equals_the_float64_head(seed: int, small_rows: int) -> None:
    lengths = [1, 5, 2, 40, 9, 1, 17]
    rows, weight, bias = _random_case(seed, lengths)
    want = float64_head(rows, lengths, weight, bias)
    qv = QuantizedVocab.build(weight, bias, centre=rows.mean(dim=0) if seed % 2 else None)
    got = screened_pool(rows, torch.tensor(lengths), qv)
    assert torch.equal(got, want)
    assert torch.equal(pool(rows, lengths, qv, small_rows=small_rows), want)
    # The plain fp32 head agrees to its own rounding.
    torch.testing.assert_close(got, splade_pool(rows, torch.tensor(lengths), weight, bias), atol=1e-5, rtol=0)
    assert 0 < int((got > 0).sum()) < got.numel()


@pytest.mark.parametrize("seed", range(4))
def test_entries_at_the_threshold_come_out_as_the_exact_value_says(seed: int, small_rows: int) -> None:
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
    qv = QuantizedVocab.build(weight, bias)
    passed = candidates(rows, lengths, qv, small_rows)
    got = pool(rows, lengths, qv, small_rows=small_rows)
    exact = maxima + bias.double()
    assert torch.equal(exact[text], steps.double() * 2.0**-24)
    # +1 and +2 units are present (log1p keeps them positive in fp32), 0 and below are absent.
    assert torch.equal(got[text] > 0, steps > 0)
    assert torch.equal(got > 0, exact > 0)
    assert torch.equal(got, float64_head(rows, lengths, weight, bias))
    # The screen let every threshold entry of that text through, and it did drop others.
    assert bool(passed[text].all())
    assert not bool(passed.all())


def test_biases_inside_the_bound_on_every_side(small_rows: int) -> None:
    # Biases spread uniformly over [-bound, +bound] around each text's exact maximum: the region
    # where only the finish can tell. Any entry the screen wrongly dropped would show up here.
    lengths = [7, 1, 30, 2]
    rows, weight, _ = _random_case(9, lengths, vocab=900)
    g = torch.Generator().manual_seed(10)
    maxima = torch.stack([(part.double() @ weight.double().T).amax(dim=0) for part in rows.split(lengths)])
    for text in range(len(lengths)):
        bias = (-maxima[text] + (torch.rand(900, generator=g, dtype=torch.float64) - 0.5) * 0.2).float()
        got = pool(rows, lengths, QuantizedVocab.build(weight, bias), small_rows=small_rows)
        want = float64_head(rows, lengths, weight, bias)
        assert torch.equal(got, want)
        assert 200 < int((got[text] > 0).sum()) < 700


def test_many_short_texts() -> None:
    # More texts than rows per block: the blocks narrow to keep (texts x entries) bounded.
    lengths = [1, 2, 3] * 30
    rows, weight, bias = _random_case(12, lengths)
    qv = QuantizedVocab.build(weight, bias)
    want = float64_head(rows, lengths, weight, bias)
    assert torch.equal(pool(rows, lengths, qv, block_elements=2000), want)
    assert torch.equal(screened_pool(rows, torch.tensor(lengths), qv), want)


def test_degenerate_rows(small_rows: int) -> None:
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
    qv = QuantizedVocab.build(weight, bias)
    want = float64_head(rows, lengths, weight, bias)
    assert torch.equal(screened_pool(rows, torch.tensor(lengths), qv), want)
    assert torch.equal(pool(rows, lengths, qv, block_elements=1, small_rows=small_rows), want)


def test_a_text_gets_the_same_weights_in_any_batch() -> None:
    # The screen's centre and scales depend on the batch; the weights do not.
    lengths = [6, 11, 3, 25, 1]
    rows, weight, bias = _random_case(4, lengths)
    qv = QuantizedVocab.build(weight, bias)
    together = screened_pool(rows, torch.tensor(lengths), qv)
    for t, part in enumerate(rows.split(lengths)):
        assert torch.equal(screened_pool(part, torch.tensor([lengths[t]]), qv)[0], together[t])


@pytest.mark.skipif(not HAS_PACKED, reason="this CPU has no exact packed int8 kernel (no VNNI)")
def test_packed_products_are_exact_at_the_extremes() -> None:
    # Rows and decoder rows at +-127, in sign patterns that overflow int16 pair sums: the
    # products must be the exact integers (2,064,512 at most: below 2^24, so fp32 holds them).
    g = torch.Generator().manual_seed(5)
    hidden = 128
    decoder = torch.randint(-127, 128, (500, hidden), generator=g, dtype=torch.int8)
    decoder[:4] = torch.tensor([[127], [-127], [127], [-127]], dtype=torch.int8)
    decoder[2, 1::2] = -127
    packed = PackedVocab.build(decoder)
    assert packed is not None
    rows = torch.cat([decoder[:4], -decoder[:4], torch.randint(-127, 128, (9, hidden), generator=g, dtype=torch.int8)])
    got = packed.products(rows)
    assert got.dtype == torch.float32
    assert torch.equal(got.double(), rows.double() @ decoder.double().T)
    assert float(got.abs().max()) == 128 * 127 * 127


def test_short_requests_take_the_packed_kernel(splade_encoder: Encoder) -> None:
    assert (splade_encoder._head.packed is not None) == HAS_PACKED


def test_finish_of_no_candidates() -> None:
    rows, weight, bias = torch.ones(3, 4), torch.ones(6, 4), torch.zeros(6)
    none = torch.zeros(0, dtype=torch.long)
    assert finish(rows, torch.tensor([2, 1]), weight, bias, none, none).numel() == 0


def test_empty_batch_and_bad_lengths() -> None:
    qv = QuantizedVocab.build(torch.zeros(5, 4), torch.zeros(5))
    assert screened_pool(torch.zeros(0, 4), torch.tensor([], dtype=torch.long), qv).shape == (0, 5)
    with pytest.raises(ValueError, match="at least one token"):
        screened_pool(torch.zeros(2, 4), torch.tensor([2, 0]), qv)
    with pytest.raises(ValueError, match="sum\\(lengths\\)"):
        screened_pool(torch.zeros(3, 4), torch.tensor([2]), qv)


# --- the real model ---


def _rows(encoder: Encoder, ids: list[np.ndarray]) -> torch.Tensor:
    """The rows the encoder's head sees for `ids`, grouped as `encode_ids` groups them."""
    lengths = np.array([len(x) for x in ids])
    with torch.inference_mode():
        groups = encoder._groups(lengths)
        return torch.cat([encoder._rows(ids[g.start : g.stop], lengths[g.start : g.stop]) for g in groups])


def test_real_model_equals_float64_head_and_fp32_head(splade_encoder: Encoder) -> None:
    ids = [e.ids for e in splade_encoder.tokenize(VARIED_TEXTS)]
    lengths = [len(x) for x in ids]
    model = splade_encoder.model
    rows = _rows(splade_encoder, ids)
    want = float64_head(rows, lengths, model.decoder_weight, model.decoder_bias)
    plain = splade_pool(rows, torch.tensor(lengths), model.decoder_weight, model.decoder_bias)
    vectors = splade_encoder.encode_ids(ids)
    got = torch.from_numpy(np.stack([dense(v, want.shape[1]) for v in vectors]))
    assert torch.equal(got, want)
    # The plain fp32 head differs by its own rounding only; so does its non-zero set, by entries
    # within that rounding of zero.
    assert float((got - plain).abs().max()) < 1e-5
    differ = (got > 0) != (plain > 0)
    assert bool((torch.maximum(got, plain)[differ] < 1e-5).all())


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


def test_real_model_screen_is_tight(splade_encoder: Encoder) -> None:
    ids = [e.ids for e in splade_encoder.tokenize(VARIED_TEXTS)]
    lengths = torch.tensor([len(x) for x in ids])
    rows = _rows(splade_encoder, ids)
    passed = candidates(rows, lengths.tolist(), splade_encoder._head)
    positive = screened_pool(rows, lengths, splade_encoder._head) > 0
    assert bool(passed[positive].all())
    # About 1% of entries survive, ~2x the positive ones (measured 1.0% on the corpus).
    assert float(passed.float().mean()) < 0.02
    assert int(passed.sum()) < 3 * int(positive.sum())


def test_real_model_entries_at_the_threshold(splade_model_dir: Path) -> None:
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
    encoder = Encoder(model, tokenizer)
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
    vectors = Encoder(model, tokenizer).encode_ids(ids)
    got = torch.from_numpy(dense(vectors[0], below.numel()))
    assert torch.equal(got > 0, side > 0)
    assert torch.equal(got, float64_head(rows, lengths, model.decoder_weight, bias)[0])
