"""The encoder against the reference SPLADE computation (transformers + torch), on the real model."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from elserve.runtime import Encoder, ModelFormatError, SparseVector, Tokenizer
from elserve.runtime.bert import BertMaskedLM, load_bert
from elserve.runtime.config import BertConfig
from elserve.runtime.encoder import streams_weights
from tests.runtime.reference import (
    assert_matches_reference,
    dense,
    fp32_rounding,
    reference_model,
    reference_weights,
)
from tests.runtime.texts import VARIED_TEXTS
from tests.support.model_factory import build_bert_dir, default_vocab


@pytest.fixture(scope="module")
def reference(splade_model_dir: Path) -> torch.nn.Module:
    return reference_model(splade_model_dir)


@pytest.fixture(scope="module")
def expected(splade_encoder: Encoder, splade_model_dir: Path, reference: torch.nn.Module) -> np.ndarray:
    """The reference weights of every text, each run alone (no padding at all)."""
    ids = [e.ids for e in splade_encoder.tokenize(VARIED_TEXTS)]
    return np.stack([reference_weights(reference, [one])[0] for one in ids])


def test_reference_holds_the_checkpoint_weights(reference: torch.nn.Module, splade_model_dir: Path) -> None:
    # The checkpoint names LayerNorm gamma/beta; transformers must map them, not initialise
    # fresh ones (which would make a reference of ones and zeros).
    raw = load_file(str(splade_model_dir / "model.safetensors"))
    state = reference.state_dict()
    for name, tensor in raw.items():
        key = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        assert torch.equal(state[key], tensor), name
    assert torch.equal(state["cls.predictions.decoder.weight"], raw["bert.embeddings.word_embeddings.weight"])


def test_tokenization_matches_transformers(splade_encoder: Encoder, splade_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(splade_model_dir)
    ours = splade_encoder.tokenize(VARIED_TEXTS)
    for text, encoded in zip(VARIED_TEXTS, ours, strict=True):
        assert encoded.ids.tolist() == reference(text, truncation=True, max_length=512)["input_ids"], repr(text)
        assert encoded.is_truncated == (len(reference(text)["input_ids"]) > 512), repr(text)


def test_single_text_batches_match_reference(splade_encoder: Encoder, expected: np.ndarray) -> None:
    for text, encoded, want in zip(VARIED_TEXTS, splade_encoder.tokenize(VARIED_TEXTS), expected, strict=True):
        (vector,) = splade_encoder.encode_ids([encoded.ids])
        try:
            assert_matches_reference(vector, want)
        except AssertionError as e:
            raise AssertionError(f"text {text[:60]!r}: {e}") from e


def test_mixed_length_batches_match_reference(splade_encoder: Encoder, expected: np.ndarray) -> None:
    # Unsorted batches, so short texts sit beside long ones and carry lots of padding.
    ids = [e.ids for e in splade_encoder.tokenize(VARIED_TEXTS)]
    order = list(range(len(ids)))
    random.Random(7).shuffle(order)
    for start in range(0, len(order), 9):
        chunk = order[start : start + 9]
        for i, vector in zip(chunk, splade_encoder.encode_ids([ids[i] for i in chunk]), strict=True):
            assert_matches_reference(vector, expected[i])


def test_padded_reference_batch_agrees(splade_encoder: Encoder, reference: torch.nn.Module) -> None:
    # The reference itself with an attention mask over a padded batch (as the brief states it).
    texts = ["short", "a much longer text with many more word pieces in it than the first", "", "中文 😀"]
    ids = [e.ids for e in splade_encoder.tokenize(texts)]
    for vector, want in zip(splade_encoder.encode_ids(ids), reference_weights(reference, ids), strict=True):
        assert_matches_reference(vector, want)


def test_encode_returns_truncation_flags_in_order(splade_encoder: Encoder, expected: np.ndarray) -> None:
    # A small token budget forces many length-sorted batches; results come back in input order.
    results = splade_encoder.encode(VARIED_TEXTS, max_batch_tokens=600)
    assert len(results) == len(VARIED_TEXTS)
    for (vector, truncated), encoded, want in zip(
        results, splade_encoder.tokenize(VARIED_TEXTS), expected, strict=True
    ):
        assert truncated == encoded.is_truncated
        assert_matches_reference(vector, want)
    assert sum(truncated for _, truncated in results) == 8


def test_a_backlog_runs_one_batch_per_thread(
    splade_encoder: Encoder, expected: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many batches on two threads: each runs whole on one worker thread, single-threaded, cut to
    # that thread's share of the budget, and the vectors come back in input order all the same.
    ran: list[tuple[str, int, int, int]] = []
    encode = splade_encoder._encode

    def recorded(batch: list[np.ndarray], lengths: np.ndarray) -> list[SparseVector]:
        ran.append((threading.current_thread().name, torch.get_num_threads(), len(batch), int(lengths.sum())))
        return encode(batch, lengths)

    monkeypatch.setattr(splade_encoder, "_encode", recorded)
    results = splade_encoder.encode(VARIED_TEXTS, max_batch_tokens=600)
    assert len(ran) > 2 and sum(texts for _, _, texts, _ in ran) == len(VARIED_TEXTS)
    for thread, threads, texts, tokens in ran:
        assert thread.startswith("elserve-worker") and threads == 1
        assert tokens <= 300 or texts == 1
    for (vector, _), want in zip(results, expected, strict=True):
        assert_matches_reference(vector, want)


def test_vectors_are_sorted_positive_float32(splade_encoder: Encoder) -> None:
    for vector, _ in splade_encoder.encode(["Elasticsearch learned sparse encoder", ""]):
        assert isinstance(vector, SparseVector)
        assert vector.indices.dtype == np.int32 and vector.weights.dtype == np.float32
        assert len(vector) > 0 and np.all(vector.weights > 0)
        assert np.all(np.diff(vector.weights) <= 0)
        assert len(set(vector.indices.tolist())) == len(vector)


def test_encode_ids_rejects_bad_sequences(splade_encoder: Encoder) -> None:
    with pytest.raises(ValueError, match="1 to 512 tokens"):
        splade_encoder.encode_ids([np.array([101, 102], np.int32), np.array([], np.int32)])
    with pytest.raises(ValueError, match="1 to 512 tokens"):
        splade_encoder.encode_ids([np.full(513, 1000, np.int32)])
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 30522\)"):
        splade_encoder.encode_ids([np.array([101, 30522, 102], np.int32)])
    assert splade_encoder.encode_ids([]) == []


def test_load_sets_threads(splade_model_dir: Path) -> None:
    before = torch.get_num_threads()
    try:
        encoder = Encoder.load(splade_model_dir, num_threads=1)
        assert torch.get_num_threads() == 1
        assert encoder.max_length == 512 and len(encoder.vocab) == 30522
    finally:
        torch.set_num_threads(before)


def test_embedding_rows_past_the_tokenizer_get_no_weight(tmp_path: Path) -> None:
    # Some checkpoints pad the embedding matrix past the tokenizer's vocabulary: those rows
    # cannot be named, so they are not scored.
    plain = build_bert_dir(tmp_path / "plain")
    padded = build_bert_dir(tmp_path / "padded")
    weights = load_file(str(padded / "model.safetensors"))
    weights["bert.embeddings.word_embeddings.weight"] = torch.cat(
        [weights["bert.embeddings.word_embeddings.weight"], torch.full((3, 32), 5.0)]
    )
    weights["cls.predictions.bias"] = torch.cat([weights["cls.predictions.bias"], torch.full((3,), 9.0)])
    save_file(weights, str(padded / "model.safetensors"))
    config = json.loads((padded / "config.json").read_text())
    config["vocab_size"] += 3
    (padded / "config.json").write_text(json.dumps(config))
    texts = ["hello w1", "", "a b c"]
    size = config["vocab_size"]
    # Each encoder picks its layers' kernels by a timing at load (packed or plain): the same
    # weights to within fp32 rounding, and never a weight for the rows past the tokenizer.
    for (v1, _), (v2, _) in zip(Encoder.load(plain).encode(texts), Encoder.load(padded).encode(texts), strict=True):
        assert bool((v2.indices < size - 3).all())
        want = dense(v1, size)
        np.testing.assert_allclose(
            dense(v2, size), want, rtol=0, atol=fp32_rounding(torch.from_numpy(want), 64, layers=2)
        )


def test_tokenizer_larger_than_the_model_is_refused(tmp_path: Path) -> None:
    model = load_bert(build_bert_dir(tmp_path / "model", vocab=default_vocab(words=10)))
    tokenizer = Tokenizer.from_dir(build_bert_dir(tmp_path / "tokenizer", vocab=default_vocab(words=11)))
    with pytest.raises(ModelFormatError, match=r"the tokenizer has \[155\] tokens but the model only \[154\]"):
        Encoder(model, tokenizer)


def test_only_models_whose_layers_outgrow_the_caches_stream_their_weights(splade_encoder: Encoder) -> None:
    # SPLADE-tiny's layers (1.6 MB) stay on one worker thread; a BERT-base's (340 MB) run an
    # unsplit batch on torch's intra-op threads. Built on the meta device: shapes, no memory.
    assert not streams_weights(splade_encoder.model)
    assert not splade_encoder.one_arena  # its threads keep their own malloc arenas (runtime/heap.py)
    base = BertConfig(
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
    )
    with torch.device("meta"):
        assert streams_weights(BertMaskedLM(base))
