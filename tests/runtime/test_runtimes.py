"""Every runtime gives the reference SPLADE vectors for the same weights (transformers' own
BertForMaskedLM / DistilBertForMaskedLM + max log1p(relu) pooling), and models it cannot run
correctly are refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from elserve.runtime import Encoder, ModelFormatError, Tokenizer
from elserve.runtime.layout import ELASTIC, HF, layout_of
from elserve.runtime.torchscript import TorchScriptEncoder
from tests.runtime.reference import assert_matches_reference, reference_model, reference_weights
from tests.support.model_factory import (
    build_bert_dir,
    build_distilbert_dir,
    build_torchscript_dir,
    default_vocab,
    torchscript_reference,
)

TEXTS = [
    "hello world",
    "The quick brown fox, e.g. a w1 w2 w3 ... jumps!",
    "Ünïcödé ACCENTS and UPPER case 123",
    "a",
    " ".join(f"w{i}" for i in range(90)),  # cut at the window
]


def _check(encoder: Encoder | TorchScriptEncoder, tokenizer: Tokenizer, reference_dir: Path) -> None:
    reference = reference_model(reference_dir)
    encoded = tokenizer.encode_batch(TEXTS)
    ids = [e.ids for e in encoded]
    assert encoded[-1].is_truncated and len(ids[-1]) == tokenizer.max_length
    vectors = encoder.encode_ids(ids)  # one padded batch
    for one, vector in zip(ids, vectors, strict=True):
        assert len(vector) > 0
        assert_matches_reference(vector, reference_weights(reference, [one])[0])


def _transformers_ids(model_dir: Path, text: str, max_length: int) -> list[int]:
    from transformers import BertTokenizer

    return BertTokenizer.from_pretrained(model_dir)(text, truncation=True, max_length=max_length)["input_ids"]


@pytest.mark.parametrize(
    "options",
    [{}, {"vocab_txt_only": True, "sinusoidal": True}],
    ids=["tokenizer.json", "vocab.txt+sinusoidal"],
)
def test_distilbert_checkpoint_matches_reference(tmp_path: Path, options: dict) -> None:
    model_dir = build_distilbert_dir(tmp_path / "d", **options)
    assert layout_of(model_dir) == HF
    encoder = Encoder.load(model_dir)
    assert isinstance(encoder, Encoder)
    _check(encoder, encoder.tokenizer, model_dir)


def test_vocab_txt_tokenizer_is_berts(tmp_path: Path) -> None:
    model_dir = build_bert_dir(tmp_path / "b")
    (model_dir / "tokenizer.json").unlink()
    (model_dir / "vocab.txt").write_text("\n".join(default_vocab()) + "\n")
    tokenizer = Tokenizer.from_dir(model_dir)
    for text in TEXTS:
        assert tokenizer.encode_batch([text])[0].ids.tolist() == _transformers_ids(model_dir, text, 64), text
    encoder = Encoder.load(model_dir)
    _check(encoder, tokenizer, model_dir)


@pytest.mark.parametrize(
    ("architecture", "pooled"),
    [("bert", False), ("distilbert", False), ("bert", True)],
    ids=["bert-logits", "distilbert-logits", "bert-pooled"],
)
def test_torchscript_runs_through_the_exact_head(tmp_path: Path, architecture: str, pooled: bool) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m", architecture=architecture, pooled=pooled)
    assert layout_of(model_dir) == ELASTIC
    encoder = Encoder.load(model_dir)
    assert isinstance(encoder, Encoder), "the fast path: weights taken into the BERT module"
    reference_dir = torchscript_reference(model_dir)
    for text in TEXTS:  # vocab.json + the configuration's bert tokenization = the model's tokenizer
        assert encoder.tokenize([text])[0].ids.tolist() == _transformers_ids(reference_dir, text, 64), text
    _check(encoder, encoder.tokenizer, reference_dir)


class _Scaled(torch.nn.Module):
    """A traced model with a weight of its own around the masked-LM: not extractable."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, input_ids, attention_mask, token_type_ids, position_ids):
        return (self.inner(input_ids, attention_mask, token_type_ids, position_ids)[0] * self.scale,)


def test_other_torchscript_runs_itself(tmp_path: Path) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m")
    inner = torch.jit.load(str(model_dir / "model.pt"))
    ids = torch.tensor([[2, 40, 3]])
    traced = torch.jit.trace(_Scaled(inner), (ids, torch.ones_like(ids), torch.zeros_like(ids), torch.arange(3)))
    traced.save(str(model_dir / "model.pt"))
    encoder = Encoder.load(model_dir)
    assert isinstance(encoder, TorchScriptEncoder), "the slow path"
    _check(encoder, Tokenizer.from_dir(model_dir), torchscript_reference(model_dir))


def _edit_json(path: Path, change) -> None:
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(model_type="roberta"), r"unsupported model_type \[roberta\]"),
        (
            lambda c: c.update(architectures=["DistilBertForSequenceClassification"]),
            r"not a masked-LM; SPLADE needs the masked-LM head",
        ),
    ],
)
def test_other_architectures_are_refused(tmp_path: Path, change, message: str) -> None:
    model_dir = build_distilbert_dir(tmp_path / "d")
    _edit_json(model_dir / "config.json", change)
    with pytest.raises(ModelFormatError, match=message):
        Encoder.load(model_dir)


def test_inference_free_encoder_is_refused(tmp_path: Path) -> None:
    model_dir = build_distilbert_dir(tmp_path / "d")
    (model_dir / "idf.json").write_text(json.dumps({"hello": 1.5}))
    with pytest.raises(ModelFormatError, match=r"inference-free sparse encoder: its query side is an IDF table"):
        Encoder.load(model_dir)


def test_vocabulary_larger_than_the_decoder_is_refused(tmp_path: Path) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m")
    _edit_json(model_dir / "vocab.json", lambda v: v["vocabulary"].extend(["extra1", "extra2"]))
    with pytest.raises(ModelFormatError, match=r"the tokenizer has \[346\] tokens but the model only \[344\]"):
        Encoder.load(model_dir)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["inference_config"]["text_expansion"].update(tokenization={"roberta": {}}),
            r"tokenization \[roberta\] is not supported",
        ),
        (
            lambda c: c.update(inference_config={"text_embedding": {}}),
            r"inference_config is \['text_embedding'\], not one of \['text_expansion', 'pass_through'\]",
        ),
        (
            lambda c: c["inference_config"]["text_expansion"]["tokenization"]["bert"].update(max_sequence_length=128),
            r"window of \[128\] tokens is longer than the model's \[64\] positions",
        ),
    ],
)
def test_unsupported_elastic_configurations_are_refused(tmp_path: Path, change, message: str) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m")
    _edit_json(model_dir / "trained_model_config.json", change)
    with pytest.raises(ModelFormatError, match=message):
        Encoder.load(model_dir)


def test_neither_layout_is_refused(tmp_path: Path) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m")
    (model_dir / "vocab.json").unlink()
    with pytest.raises(ModelFormatError, match=r"lacks \['vocab.json'\] \(Elastic layout\)"):
        layout_of(model_dir)
    (model_dir / "model.pt").unlink()
    with pytest.raises(ModelFormatError, match="neither a Hugging Face model directory"):
        layout_of(model_dir)


def test_dense_reference_agrees_with_a_padded_batch(tmp_path: Path) -> None:
    # The reference itself pools over real tokens only: padding a text changes nothing.
    model_dir = build_distilbert_dir(tmp_path / "d")
    reference = reference_model(model_dir)
    ids = [np.array([2, 40, 41, 3]), np.array([2, 50, 3])]
    both = reference_weights(reference, ids)
    assert np.allclose(both[1], reference_weights(reference, ids[1:])[0], atol=1e-5)


def test_elastic_tokenization_settings_are_followed(tmp_path: Path) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m")
    lower = Tokenizer.from_dir(model_dir).encode_batch(["Hello"])[0].ids.tolist()
    _edit_json(
        model_dir / "trained_model_config.json",
        lambda c: c["inference_config"]["text_expansion"]["tokenization"]["bert"].update(
            do_lower_case=False, with_special_tokens=False, max_sequence_length=8
        ),
    )
    tokenizer = Tokenizer.from_dir(model_dir)
    vocab = default_vocab()
    cased = tokenizer.encode_batch(["Hello"])[0].ids.tolist()
    assert lower[0] == vocab.index("[CLS]") and lower[-1] == vocab.index("[SEP]")
    assert cased == [vocab.index("[UNK]")]  # no specials; "Hello" is not in the lower-case vocabulary
    assert tokenizer.max_length == 8
