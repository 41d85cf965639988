"""TorchScript models in Elastic's layout (`model.pt`), as eland traces them or Elastic ships them.

eland traces a `text_expansion` model as transformers' `...ForMaskedLM` answering `(logits,)`, called
with the four inputs Elasticsearch's BERT tokenizer gives (`input_ids, attention_mask,
token_type_ids, position_ids`; DistilBERT inside a wrapper that drops the last two); Elasticsearch
then applies SPLADE pooling to the `(texts, tokens, vocab)` logits (`expansion_type: splade`).
Elastic's ELSER pools inside the model and answers `(texts, vocab)` weights, taken as they are.

Two ways to run one:
- **fast**: when the module's weights are exactly a BERT or DistilBERT masked-LM's (names and shapes),
  they are taken into `bert.BertMaskedLM` and served by the exact head like any Hugging Face model.
  A module whose state holds no weights (eland 9 freezes what it traces: the weights are graph
  constants) is read from its graph instead (script_graph.py), when the graph is exactly such a masked-LM.
  What the weights do not say (the number of attention heads) is tried, and the fast model is used
  only if it answers what the TorchScript answers on a sample batch (padding included);
- **slow**: anything else is run as the TorchScript itself, then pooled: correct, not faster than
  the traced graph.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import torch

from elserve.runtime.bert import BertMaskedLM, model_from_weights
from elserve.runtime.config import ACTIVATIONS, BERT, DISTILBERT, BertConfig, ModelFormatError
from elserve.runtime.layout import ELASTIC_MODEL
from elserve.runtime.script_graph import as_constants, find_nodes, masked_lm_weights
from elserve.runtime.sparse import SparseVector, sparsify
from elserve.runtime.workers import run_now

log = logging.getLogger("elserve.runtime")

# Where each architecture's word embeddings sit in a masked-LM's state (after any wrapper's prefix).
_MARKERS = (
    (DISTILBERT, "distilbert.embeddings.word_embeddings.weight"),
    (BERT, "bert.embeddings.word_embeddings.weight"),
)
# The fast model must give the TorchScript's outputs within this (relative to the largest output).
AGREEMENT = 1e-4
# What Elasticsearch's BERT tokenizer gives a model: input_ids, attention_mask, token_type_ids, position_ids.
ARGUMENTS_OF_ELASTIC = 4


def load_script(model_dir: Path) -> torch.jit.ScriptModule:
    path = model_dir / ELASTIC_MODEL
    try:
        with warnings.catch_warnings():
            # torch marks TorchScript deprecated; it is the format Elasticsearch's models come in.
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as e:
        raise ModelFormatError(f"[{path}] is not a TorchScript model torch can load: {e}") from e
    inputs = argument_count(module)
    if inputs not in (2, ARGUMENTS_OF_ELASTIC):
        raise ModelFormatError(
            f"[{path}] takes {inputs} inputs; Elasticsearch's models take 4 (input_ids, attention_mask, "
            "token_type_ids, position_ids) or 2 (input_ids, attention_mask)"
        )
    return module.eval()


def argument_count(module: torch.jit.ScriptModule) -> int:
    """The inputs the module's `forward` takes, `self` not counted."""
    # `forward` is a ScriptMethod with a schema; torch's stubs type it as a plain callable.
    return len(module.forward.schema.arguments) - 1  # type: ignore[attr-defined]  # see above


def first_output(module: torch.jit.ScriptModule, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> object:
    """The module's first output for a right-padded batch, with the inputs Elasticsearch sends (all
    four, or the first two to a module that takes two)."""
    if argument_count(module) == ARGUMENTS_OF_ELASTIC:
        positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        output = module(input_ids, attention_mask, torch.zeros_like(input_ids), positions)
    else:
        output = module(input_ids, attention_mask)
    return output[0] if isinstance(output, (tuple, list)) else output


def right_padded(batch: list[np.ndarray], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(input_ids, attention_mask)`, both `(texts, longest)` (at least one column): the texts' token
    ids one per row, right-padded with `pad_token_id`, as Elasticsearch's tokenizer pads a batch."""
    longest = max(1, max(len(ids) for ids in batch))
    ids = torch.full((len(batch), longest), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, one in enumerate(batch):
        ids[row, : len(one)] = torch.from_numpy(one.astype(np.int64))
        mask[row, : len(one)] = 1
    return ids, mask


def run_script(module: torch.jit.ScriptModule, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The module's first output for a right-padded batch: logits or pooled weights, as float32."""
    output = first_output(module, input_ids, attention_mask)
    if not isinstance(output, torch.Tensor) or output.ndim not in (2, 3):
        raise ModelFormatError(
            "the TorchScript model must answer (texts, tokens, vocab) logits or (texts, vocab) weights"
        )
    return output.float()


def splade(output: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """`(texts, vocab)` weights: SPLADE max pooling over real tokens for logits, as they are if pooled."""
    if output.ndim == 2:
        return output
    weights = torch.log1p(torch.relu(output)) * attention_mask[:, :, None].to(output.dtype)
    return weights.amax(dim=1)


def _sample(vocab_size: int, positions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two texts, the second padded, of random non-special ids."""
    g = torch.Generator().manual_seed(0)
    length = max(2, min(12, positions))
    ids = torch.randint(min(5, vocab_size - 1), vocab_size, (2, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, length // 2 :] = 0
    ids[1, length // 2 :] = 0
    return ids, mask


def _masked_lm_weights(module: torch.jit.ScriptModule) -> tuple[str, dict[str, torch.Tensor]] | None:
    """(architecture, checkpoint-named weights) when the module holds a BERT or DistilBERT masked-LM
    and nothing else, in its state or (a module without state) in its graph; None otherwise."""
    state = module.state_dict()
    if not any(t.is_floating_point() for t in state.values()):  # frozen, or weights as plain attributes
        constants = as_constants(module)
        return masked_lm_weights(constants) if constants is not None else None
    for architecture, marker in _MARKERS:
        key = next((k for k in state if k.endswith(marker)), None)
        if key is None:
            continue
        prefix = key[: -len(marker)]
        if architecture == BERT and prefix.endswith("distil"):
            continue
        if not all(k.startswith(prefix) for k in state):
            return None  # weights of something around the masked-LM
        return architecture, {k[len(prefix) :]: v for k, v in state.items()}
    return None


def _graph_settings(module: torch.jit.ScriptModule) -> tuple[float, str] | None:
    """(LayerNorm eps, activation) read from the graph's constants; None when they are not plain."""
    graph = module.inlined_graph
    eps = set()
    for node in find_nodes(graph, "aten::layer_norm"):
        value = node.inputsAt(4).toIValue()
        if not isinstance(value, float | int):  # not a constant (None) or not a number
            return None
        eps.add(float(value))
    gelu = {node.inputsAt(1).toIValue() for node in find_nodes(graph, "aten::gelu")}
    if len(eps) != 1 or len(gelu) > 1:
        return None
    if gelu:
        approximate = gelu.pop()
        act = next((name for name, mode in ACTIVATIONS.items() if mode == approximate and name != "relu"), None)
        if act is None:
            return None
    elif find_nodes(graph, "aten::relu"):
        act = "relu"
    else:
        return None
    return eps.pop(), act


def extract_masked_lm(module: torch.jit.ScriptModule) -> BertMaskedLM | None:
    """The module's masked-LM as `BertMaskedLM` (the fast path), or None when it is not exactly one
    (then the reason is logged and the TorchScript runs itself)."""
    found = _masked_lm_weights(module)
    settings = _graph_settings(module)
    if found is None or settings is None:
        log.info("the TorchScript model is not a plain BERT/DistilBERT masked-LM: it runs as TorchScript")
        return None
    architecture, weights = found
    eps, act = settings
    prefix = "distilbert." if architecture == DISTILBERT else "bert."
    vocab_size, hidden = weights[prefix + "embeddings.word_embeddings.weight"].shape
    positions = weights[prefix + "embeddings.position_embeddings.weight"].shape[0]
    if architecture == DISTILBERT:
        layer_keys = [k for k in weights if k.startswith("distilbert.transformer.layer.")]
        layers = 1 + max(int(k.split(".")[3]) for k in layer_keys) if layer_keys else 0
        intermediate = weights["distilbert.transformer.layer.0.ffn.lin1.weight"].shape[0] if layers else hidden
        type_vocab = 1
    else:
        layer_keys = [k for k in weights if k.startswith("bert.encoder.layer.")]
        layers = 1 + max(int(k.split(".")[3]) for k in layer_keys) if layer_keys else 0
        intermediate = weights["bert.encoder.layer.0.intermediate.dense.weight"].shape[0] if layers else hidden
        type_vocab = weights["bert.embeddings.token_type_embeddings.weight"].shape[0]
    ids, mask = _sample(vocab_size, positions)
    with torch.inference_mode():
        expected = run_script(module, ids, mask)
    # Head sizes of published models first (64, then 32 ...).
    heads = sorted((h for h in range(1, hidden + 1) if hidden % h == 0), key=lambda h: abs(hidden // h - 64))
    for count in heads:
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=count,
            intermediate_size=intermediate,
            max_position_embeddings=positions,
            type_vocab_size=type_vocab,
            layer_norm_eps=eps,
            hidden_act=act,
            architecture=architecture,
        )
        try:
            model = model_from_weights(config, weights, ELASTIC_MODEL, "a masked-LM of their shapes")
        except ModelFormatError as e:
            log.info("the TorchScript model's weights are not a plain masked-LM (%s): it runs as TorchScript", e)
            return None
        if _agrees(model, ids, mask, expected):
            return model
    log.info("no BERT/DistilBERT configuration reproduces the TorchScript model's outputs: it runs as TorchScript")
    return None


def _agrees(model: BertMaskedLM, ids: torch.Tensor, mask: torch.Tensor, expected: torch.Tensor) -> bool:
    with torch.inference_mode():
        lengths = mask.sum(dim=1)
        hidden = model.encode(ids, lengths)
        logits = model.transform(hidden) @ model.decoder_weight.T + model.decoder_bias
        got = splade(logits, mask) if expected.ndim == 2 else logits
    if got.shape != expected.shape:
        return False
    real = mask.bool() if expected.ndim == 3 else torch.ones(expected.shape[0], dtype=torch.bool)
    scale = max(1.0, float(expected[real].abs().max()))
    return float((got[real] - expected[real]).abs().max()) <= AGREEMENT * scale


class TorchScriptEncoder:
    """The slow path: the TorchScript model itself, then SPLADE pooling (or its own), then the
    positive weights. The same calls as `encoder.Encoder` that the workers make."""

    is_padded = True
    # One batch at a time, on torch's intra-op threads (`submit_ids` runs it in the caller's thread).
    side_by_side = False

    def __init__(self, module: torch.jit.ScriptModule, vocab_size: int, pad_token_id: int = 0) -> None:
        self.module = module
        self.vocab_size = vocab_size
        self.pad_token_id = pad_token_id
        ids, mask = _sample(vocab_size, 8)
        with torch.inference_mode():
            outputs = run_script(module, ids, mask).shape[-1]
        if outputs < vocab_size:
            raise ModelFormatError(
                f"the vocabulary has [{vocab_size}] tokens but the model's output only [{outputs}] entries"
            )
        self.kernels = {"layers": "torchscript", "head_short": "torchscript", "head_bulk": "torchscript"}
        # A quantized graph (eland's `--quantize`: int8 linears scaling their input by its range) gives
        # a text another vector beside other texts and padding: each text runs alone, so that a text's
        # vector does not depend on the requests it is batched with.
        graph = module.inlined_graph  # held while its nodes are read
        self.per_text = _is_quantized(graph.nodes())

    def use_threads(self, num_threads: int) -> None:
        """As `Encoder.use_threads`: the graph runs on torch's intra-op threads, `num_threads` of them."""
        torch.set_num_threads(num_threads)

    def submit_ids(self, batch: list[np.ndarray]) -> Future[list[SparseVector]]:
        """`encode_ids`, run now in the caller's thread: nothing runs beside it (`side_by_side`)."""
        return run_now(lambda: self.encode_ids(batch))

    def encode_ids(self, batch: list[np.ndarray]) -> list[SparseVector]:
        if self.per_text and len(batch) > 1:
            return [vector for one in batch for vector in self._encode([one])]
        return self._encode(batch)

    def _encode(self, batch: list[np.ndarray]) -> list[SparseVector]:
        if not batch:
            return []
        ids, mask = right_padded(batch, self.pad_token_id)
        with torch.inference_mode():
            weights = splade(run_script(self.module, ids, mask), mask)[:, : self.vocab_size]
        return [sparsify(row) for row in weights.numpy()]


def _is_quantized(nodes: Iterable[torch._C.Node]) -> bool:
    """Whether any of the nodes (or of the blocks within them) is a quantized op."""
    return any(
        node.kind().startswith("quantized::") or any(_is_quantized(block.nodes()) for block in node.blocks())
        for node in nodes
    )
