"""TorchScript models that hold their weights outside their state, as a `torch.jit.save` file can and a
plain module cannot: frozen (eland 9 freezes every model it traces: the weights are graph
constants), weights kept as plain tensor attributes, weights registered as buffers. Each serves the
reference SPLADE vectors, through the exact head where its graph is a BERT / DistilBERT masked-LM,
as itself otherwise; and each is sized as the same model in its Hugging Face directory."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from elserve.runtime import Encoder, Tokenizer
from elserve.runtime.memory import estimate_memory
from elserve.runtime.script_graph import masked_lm_weights
from elserve.runtime.torchscript import TorchScriptEncoder
from tests.runtime.reference import assert_matches_reference, reference_model, reference_weights
from tests.support.model_factory import build_torchscript_dir, torchscript_reference

TEXTS = [
    "hello world",
    "The quick brown fox, e.g. a w1 w2 w3 ... jumps!",
    "a",
    " ".join(f"w{i}" for i in range(90)),  # cut at the window
]
# Elasticsearch's four inputs for one text: ids, attention mask, token types, positions.
SAMPLE = (
    torch.tensor([[2, 40, 41, 3]]),
    torch.ones(1, 4, dtype=torch.long),
    torch.zeros(1, 4, dtype=torch.long),
    torch.arange(4),
)


def _check(encoder: Encoder | TorchScriptEncoder, tokenizer: Tokenizer, reference_dir: Path) -> None:
    reference = reference_model(reference_dir)
    ids = [e.ids for e in tokenizer.encode_batch(TEXTS)]
    vectors = encoder.encode_ids(ids)  # one padded batch
    for one, vector in zip(ids, vectors, strict=True):
        assert len(vector) > 0
        assert_matches_reference(vector, reference_weights(reference, [one])[0])


def _resave(model_dir: Path, module: torch.nn.Module) -> None:
    traced = torch.jit.trace(module.eval(), SAMPLE, check_trace=False)
    traced.save(str(model_dir / "model.pt"))


@pytest.mark.parametrize(
    ("architecture", "pooled"),
    [("bert", False), ("distilbert", False), ("bert", True)],
    ids=["bert-logits", "distilbert-logits", "bert-pooled"],
)
def test_frozen_masked_lm_runs_through_the_exact_head(tmp_path: Path, architecture: str, pooled: bool) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m", architecture=architecture, pooled=pooled, frozen=True)
    module = torch.jit.load(str(model_dir / "model.pt"))
    assert not module.state_dict(), "frozen: the weights are graph constants"
    encoder = Encoder.load(model_dir)
    assert isinstance(encoder, Encoder), "the fast path: the graph's constants taken into the BERT module"
    _check(encoder, encoder.tokenizer, torchscript_reference(model_dir))
    encoder.use_threads(2)  # as a worker forked from the model's parent does
    _check(encoder, encoder.tokenizer, torchscript_reference(model_dir))


def test_frozen_tied_decoder_is_the_word_embeddings(tmp_path: Path) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m", frozen=True)
    _, weights = masked_lm_weights(torch.jit.load(str(model_dir / "model.pt")))
    words = weights["bert.embeddings.word_embeddings.weight"]
    assert weights["cls.predictions.decoder.weight"] is words  # one copy, not two


class _Clamped(torch.nn.Module):
    """An op a masked-LM does not have after it: not extractable (here it changes nothing)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask, token_type_ids, position_ids):
        return (torch.clamp(self.inner(input_ids, attention_mask, token_type_ids, position_ids)[0], max=1e4),)


def test_frozen_other_graph_runs_itself(tmp_path: Path) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m")
    _resave(model_dir, _Clamped(torch.jit.load(str(model_dir / "model.pt"))))
    torch.jit.save(torch.jit.freeze(torch.jit.load(str(model_dir / "model.pt")).eval()), str(model_dir / "model.pt"))
    encoder = Encoder.load(model_dir)
    assert isinstance(encoder, TorchScriptEncoder), "the slow path"
    encoder.use_threads(2)
    _check(encoder, Tokenizer.from_dir(model_dir), torchscript_reference(model_dir))


def test_frozen_graph_with_other_weights_runs_itself(tmp_path: Path) -> None:
    # Twice the logits: the graph's ops are a masked-LM's, but a weight of its own takes part.
    model_dir = build_torchscript_dir(tmp_path / "m")
    inner = torch.jit.load(str(model_dir / "model.pt"))

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner
            self.scale = torch.nn.Parameter(torch.full((1,), 2.0))

        def forward(self, input_ids, attention_mask, token_type_ids, position_ids):
            return (self.inner(input_ids, attention_mask, token_type_ids, position_ids)[0] * self.scale,)

    _resave(model_dir, Scaled())
    torch.jit.save(torch.jit.freeze(torch.jit.load(str(model_dir / "model.pt")).eval()), str(model_dir / "model.pt"))
    encoder = Encoder.load(model_dir)
    assert isinstance(encoder, TorchScriptEncoder)
    reference = reference_model(torchscript_reference(model_dir))
    ids = [e.ids for e in Tokenizer.from_dir(model_dir).encode_batch(TEXTS)]
    assert not encoder.per_text  # one padded batch
    for one, vector in zip(ids, encoder.encode_ids(ids), strict=True):
        with torch.no_grad():
            logits = reference(input_ids=torch.from_numpy(one.astype(np.int64))[None]).logits[0]
        expected = torch.log1p(torch.relu(2 * logits)).amax(dim=0).numpy()
        assert_matches_reference(vector, expected)


def _without_parameters(model_dir: Path, keep) -> torch.nn.Module:
    """transformers' model of `model_dir` with every parameter turned into something else by
    `keep(module, name, tensor)`."""
    from transformers import AutoModelForMaskedLM, PreTrainedModel

    model = AutoModelForMaskedLM.from_pretrained(torchscript_reference(model_dir)).eval()
    for module in model.modules():
        for name, parameter in list(module._parameters.items()):
            del module._parameters[name]
            keep(module, name, parameter.detach())
    # transformers reads its device and dtype from its parameters.
    cpu = {"device": property(lambda _: torch.device("cpu")), "dtype": property(lambda _: torch.float32)}
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            module.__class__ = type(f"{type(module).__name__}WithoutParameters", (type(module),), cpu)
    return model


class _Logits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids, position_ids):
        return (self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits,)


def test_weights_as_buffers_run_through_the_exact_head(tmp_path: Path) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m")
    model = _without_parameters(model_dir, lambda module, name, tensor: module.register_buffer(name, tensor))
    _resave(model_dir, _Logits(model))
    module = torch.jit.load(str(model_dir / "model.pt"))
    assert not list(module.parameters()) and list(module.buffers())
    encoder = Encoder.load(model_dir)
    assert isinstance(encoder, Encoder)
    _check(encoder, encoder.tokenizer, torchscript_reference(model_dir))


def test_weights_as_plain_attributes_run_through_the_exact_head(tmp_path: Path) -> None:
    # Tensors that are neither parameters nor buffers: the trace keeps them, the state does not.
    model_dir = build_torchscript_dir(tmp_path / "m")
    model = _without_parameters(model_dir, lambda module, name, tensor: object.__setattr__(module, name, tensor))
    _resave(model_dir, _Logits(model))
    state = torch.jit.load(str(model_dir / "model.pt")).state_dict()
    assert not any(t.is_floating_point() for t in state.values()), "only transformers' position ids"
    encoder = Encoder.load(model_dir)
    assert isinstance(encoder, Encoder)
    _check(encoder, encoder.tokenizer, torchscript_reference(model_dir))


@pytest.mark.parametrize("architecture", ["bert", "distilbert"])
def test_frozen_model_is_sized_as_its_checkpoint(tmp_path: Path, architecture: str) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m", architecture=architecture, frozen=True)
    assert estimate_memory(model_dir, 1024) == estimate_memory(torchscript_reference(model_dir), 1024)


def test_frozen_other_graph_is_sized_by_its_constants(tmp_path: Path) -> None:
    model_dir = build_torchscript_dir(tmp_path / "m")
    _resave(model_dir, _Clamped(torch.jit.load(str(model_dir / "model.pt"))))
    torch.jit.save(torch.jit.freeze(torch.jit.load(str(model_dir / "model.pt")).eval()), str(model_dir / "model.pt"))
    got = estimate_memory(model_dir, 1024)
    expected = estimate_memory(torchscript_reference(model_dir), 1024)
    assert got.head_bytes == expected.head_bytes  # vocabulary and hidden size from the word embeddings
    # Every weight counted once (the HF checkpoint also holds a pooler the masked-LM graph never uses).
    assert 0 < got.weights_bytes <= expected.weights_bytes


def test_frozen_quantized_model_runs_itself(tmp_path: Path) -> None:
    # eland's `--quantize`: dynamically quantized linears (int8 weights packed in the graph), then
    # traced and frozen. Not the fp32 masked-LM: it runs as itself, and is sized from its fp32 constants.
    from torch.ao.quantization import quantize_dynamic

    model_dir = build_torchscript_dir(tmp_path / "m")
    hf = _Logits(reference_model(torchscript_reference(model_dir)))
    quantized = quantize_dynamic(hf, {torch.nn.Linear}, dtype=torch.qint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.freeze(torch.jit.trace(quantized.eval(), SAMPLE, check_trace=False).eval())
    traced.save(str(model_dir / "model.pt"))
    encoder = Encoder.load(model_dir)
    assert isinstance(encoder, TorchScriptEncoder)
    ids = [e.ids for e in Tokenizer.from_dir(model_dir).encode_batch(TEXTS)]
    module = torch.jit.load(str(model_dir / "model.pt"))
    # Each text runs alone (a dynamically quantized linear scales its int8 input by the whole batch's
    # range): in a batch, its own vector.
    assert encoder.per_text
    for one, vector in zip(ids, encoder.encode_ids(ids), strict=True):
        with torch.no_grad():
            row = torch.from_numpy(one.astype(np.int64))[None]
            logits = module(row, torch.ones_like(row), torch.zeros_like(row), torch.arange(row.shape[1]))[0][0]
        assert_matches_reference(vector, torch.log1p(torch.relu(logits)).amax(dim=0).numpy(), atol=1e-6)
    assert estimate_memory(model_dir, 1024).weights_bytes > 0
