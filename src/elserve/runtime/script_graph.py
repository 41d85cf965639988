"""The weights of a TorchScript model that holds them in its graph rather than in its state.

eland 9 freezes every model it traces (`torch.jit.freeze`): the saved module has no parameters or
buffers, its weights are constants of the graph. A module can also keep tensors as plain attributes,
outside its state; freezing it here turns those into constants too. This module reads such a graph:

- `masked_lm_weights`: when the graph is exactly a traced BERT or DistilBERT masked-LM, its weights
  under the names the checkpoint gives them (`bert.encoder.layer.0.attention.self.query.weight`...),
  found by their position in the graph: the embeddings by the input they index, then the layer
  norms and linears in the order the layers run them;
- `graph_tensors` and `script_state`: every tensor the graph holds, once each, by name where it
  has one (what sizing a model needs, runtime/memory.py).

Anything else (another op, a weight used another way, control flow) is not a plain masked-LM: the
module then runs as itself (torchscript.py). Whatever is found here is checked against the
module's own outputs before it is served (`torchscript.extract_masked_lm`).
"""

from __future__ import annotations

import logging
import re
import warnings

import torch

from elserve.runtime.config import BERT, DISTILBERT

log = logging.getLogger("elserve.runtime")


def find_nodes(graph: torch.Graph, kind: str) -> list[torch.Node]:
    """Every node of `kind` in the graph, nested blocks included, in the order they run."""
    # `Graph.findAllNodes` is bound by torch but missing from its stubs (`Node.findAllNodes` is there).
    return graph.findAllNodes(kind)  # type: ignore[attr-defined]  # see above


# The ops a traced transformers BERT / DistilBERT masked-LM is made of once frozen (transformers 4 and
# 5, SDPA or eager attention; SPLADE pooling inside, as Elastic's ELSER), weights aside. Any other op
# computes something this runtime's model does not.
_PLAIN_OPS = frozenset(
    {
        # plumbing
        "prim::Constant",
        "prim::ListConstruct",
        "prim::TupleConstruct",
        "prim::ListUnpack",
        "prim::TupleUnpack",
        "prim::NumToTensor",
        "aten::Int",
        "aten::ScalarImplicit",
        "aten::size",
        "aten::dim",
        "aten::detach",
        "aten::clone",
        "aten::dropout",
        "aten::contiguous",
        "aten::to",
        "aten::type_as",
        # the weighted ops, and the activations
        "aten::embedding",
        "aten::linear",
        "aten::layer_norm",
        "aten::gelu",
        "aten::relu",
        # attention
        "aten::scaled_dot_product_attention",
        "aten::matmul",
        "aten::softmax",
        "aten::div",
        "aten::mul",
        "aten::add",
        "aten::add_",
        "aten::sub",
        "aten::rsub",
        # shapes, masks and positions
        "aten::view",
        "aten::reshape",
        "aten::transpose",
        "aten::permute",
        "aten::expand",
        "aten::expand_as",
        "aten::unsqueeze",
        "aten::squeeze",
        "aten::slice",
        "aten::select",
        "aten::index",
        "aten::masked_fill",
        "aten::where",
        "aten::eq",
        "aten::ne",
        "aten::ge",
        "aten::gt",
        "aten::le",
        "aten::lt",
        "aten::__and__",
        "aten::__or__",
        "aten::bitwise_not",
        "aten::logical_not",
        "aten::arange",
        "aten::new_ones",
        "aten::ones",
        "aten::zeros",
        "aten::ones_like",
        "aten::zeros_like",
        "aten::full",
        "aten::full_like",
        # SPLADE pooling inside the model
        "aten::log1p",
        "aten::max",
        "aten::amax",
    }
)
# The weighted ops in the order a masked-LM runs them: embeddings (BERT: word, token type, position;
# DistilBERT: word, position), their norm, each layer (query, key, value, attention output, norm,
# intermediate, output, norm), the head's transform (dense, norm) and its decoder.
_ORDER = re.compile(r"^(e{2,3})n((?:llllnlln)*)lnl$")


def _constant(value: torch._C.Value) -> torch.Tensor | None:
    node = value.node()
    if node.kind() != "prim::Constant" or not isinstance(value.type(), torch._C.TensorType):
        return None
    tensor = value.toIValue()
    return tensor if isinstance(tensor, torch.Tensor) else None


def as_constants(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule | None:
    """The module with every tensor it holds as a graph constant: itself if frozen already (no
    attribute read in its graph), else a frozen copy; None when it cannot be frozen."""
    graph = module.inlined_graph
    if not find_nodes(graph, "prim::GetAttr"):
        return module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.freeze(module.eval())
    except (RuntimeError, AttributeError) as e:
        log.info("the TorchScript model cannot be frozen (%s)", e)
        return None


def graph_tensors(module: torch.jit.ScriptModule) -> list[torch.Tensor]:
    """Every tensor constant of the module's graph but scalars, each storage once (a tied decoder is
    its word embeddings), in graph order."""
    seen: set[int] = set()
    tensors = []
    graph = module.inlined_graph  # held: its nodes are invalid once it is freed
    for node in find_nodes(graph, "prim::Constant"):
        tensor = _constant(node.output())
        if tensor is None or tensor.ndim == 0 or tensor.numel() == 0:  # weights, not the scalars computed with
            continue
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in seen:
            continue
        seen.add(pointer)
        tensors.append(tensor)
    return tensors


def script_state(module: torch.jit.ScriptModule) -> dict[str, torch.Tensor]:
    """The module's tensors by name: its state; for a module whose state holds no weights (only
    integer buffers, or nothing), its graph's constants, named as the checkpoint names them when the
    graph is a masked-LM (`masked_lm_weights`), else `constant.<i>`, with the table the first input
    (input_ids) indexes named `word_embeddings.weight`."""
    state = module.state_dict()
    if any(t.is_floating_point() for t in state.values()):
        return dict(state)
    constants = as_constants(module)
    if constants is None:
        return {}
    found = masked_lm_weights(constants)
    if found is not None:
        return found[1]
    graph = constants.inlined_graph
    inputs = list(graph.inputs())
    first = inputs[1].unique() if len(inputs) > 1 else None
    words = next(
        (_constant(n.inputsAt(0)) for n in find_nodes(graph, "aten::embedding") if n.inputsAt(1).unique() == first),
        None,
    )
    named = {f"constant.{i}": t for i, t in enumerate(graph_tensors(constants))}
    if words is not None:
        named = {k: t for k, t in named.items() if t.data_ptr() != words.data_ptr()}
        named["word_embeddings.weight"] = words
    return named


def masked_lm_weights(module: torch.jit.ScriptModule) -> tuple[str, dict[str, torch.Tensor]] | None:
    """(architecture, checkpoint-named weights) of a module whose graph is exactly a BERT or
    DistilBERT masked-LM with its weights as constants (see `as_constants`); None otherwise."""
    graph = module.inlined_graph
    inputs = list(graph.inputs())[1:]  # after `self`
    order = []
    embeddings: list[tuple[torch._C.Value, torch.Tensor]] = []
    linears: list[tuple[torch.Tensor, torch.Tensor]] = []
    norms: list[tuple[torch.Tensor, torch.Tensor]] = []
    used: set[int] = set()  # the constants (graph values) the weighted ops take
    for node in graph.nodes():
        kind = node.kind()
        if kind not in _PLAIN_OPS or list(node.blocks()):
            return None
        if kind == "aten::embedding":
            weight = _constant(node.inputsAt(0))
            if weight is None:
                return None
            embeddings.append((node.inputsAt(1), weight))
            used.add(node.inputsAt(0).unique())
            order.append("e")
        elif kind in ("aten::linear", "aten::layer_norm"):
            first = 1 if kind == "aten::linear" else 2
            weight, bias = _constant(node.inputsAt(first)), _constant(node.inputsAt(first + 1))
            if weight is None or bias is None:
                return None
            (linears if kind == "aten::linear" else norms).append((weight, bias))
            used.update((node.inputsAt(first).unique(), node.inputsAt(first + 1).unique()))
            order.append("l" if kind == "aten::linear" else "n")
    if _stray_weights(graph, used):
        return None
    match = _ORDER.match("".join(order))
    if match is None:
        return None
    architecture = BERT if len(match[1]) == 3 else DISTILBERT
    named = _embeddings(embeddings, inputs, architecture)
    if named is None:
        return None
    # Shapes are checked when the weights are loaded into the model (bert.model_from_weights).
    return architecture, _name(architecture, named, linears, norms)


def _stray_weights(graph: torch._C.Graph, used: set[int]) -> bool:
    """Whether a floating-point tensor of the graph, other than a scalar, is not one of the weights
    taken (it takes part in the computation some other way)."""
    for node in find_nodes(graph, "prim::Constant"):
        tensor = _constant(node.output())
        if tensor is None or not tensor.is_floating_point() or tensor.ndim == 0:
            continue
        if node.output().unique() not in used:
            return True
    return False


def _embeddings(
    found: list[tuple[torch._C.Value, torch.Tensor]], inputs: list[torch._C.Value], architecture: str
) -> dict[str, torch.Tensor] | None:
    """The embeddings by role: the word embeddings index the first input (input_ids); BERT's token
    types index the third input (token_type_ids) when the graph takes it, else come before the
    positions, as BertEmbeddings adds them."""
    ids = [value.unique() for value in inputs]
    words = [w for index, w in found if index.unique() == ids[0]]
    if len(words) != 1:
        return None
    rest = [(index.unique(), w) for index, w in found if index.unique() != ids[0]]
    if architecture == DISTILBERT:
        return {"word": words[0], "position": rest[0][1]}
    if len(ids) == 4 and rest[1][0] == ids[2]:
        rest.reverse()
    return {"word": words[0], "token_type": rest[0][1], "position": rest[1][1]}


# Each architecture's checkpoint names (bert.py renames them to the runtime's): the embeddings' prefix,
# a layer's prefix, its six linears in the order they run, its two norms, the head's transform
# (dense, norm) and its decoder (weight, bias).
_NAMES = {
    BERT: (
        "bert.embeddings.",
        "bert.encoder.layer.{}.",
        (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "intermediate.dense",
            "output.dense",
        ),
        ("attention.output.LayerNorm", "output.LayerNorm"),
        ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm"),
        ("cls.predictions.decoder.weight", "cls.predictions.bias"),
    ),
    DISTILBERT: (
        "distilbert.embeddings.",
        "distilbert.transformer.layer.{}.",
        ("attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "ffn.lin1", "ffn.lin2"),
        ("sa_layer_norm", "output_layer_norm"),
        ("vocab_transform", "vocab_layer_norm"),
        ("vocab_projector.weight", "vocab_projector.bias"),
    ),
}


def _name(
    architecture: str,
    embeddings: dict[str, torch.Tensor],
    linears: list[tuple[torch.Tensor, torch.Tensor]],
    norms: list[tuple[torch.Tensor, torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """The weights found, by role, under the checkpoint's names."""
    base, layer, parts, layer_norms, (dense, head_norm), (decoder, decoder_bias) = _NAMES[architecture]
    weights = {f"{base}{role}_embeddings.weight": tensor for role, tensor in embeddings.items()}

    def put(name: str, pair: tuple[torch.Tensor, torch.Tensor]) -> None:
        weights[f"{name}.weight"], weights[f"{name}.bias"] = pair

    put(f"{base}LayerNorm", norms[0])
    for i in range((len(linears) - 2) // 6):
        for j, part in enumerate(parts):
            put(layer.format(i) + part, linears[6 * i + j])
        for j, part in enumerate(layer_norms):
            put(layer.format(i) + part, norms[1 + 2 * i + j])
    put(dense, linears[-2])
    put(head_norm, norms[-1])
    word, (projection, bias) = embeddings["word"], linears[-1]
    # A tied decoder frozen as a second constant: the word embeddings serve as both (one copy).
    tied = projection.shape == word.shape and (
        projection.data_ptr() == word.data_ptr() or torch.equal(projection, word)
    )
    weights[decoder] = word if tied else projection
    weights[decoder_bias] = bias
    return weights
