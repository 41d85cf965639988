"""A BERT (or DistilBERT: the same layers) masked-LM in plain PyTorch (fp32), loaded from `model.safetensors`.

The forward is split where SPLADE needs it: `encode_packed` runs the texts' real tokens, all
texts' rows concatenated, through the encoder layers (`encode` is the same on a right-padded
batch, for TorchScript models and as the reference), `transform` runs the MLM head's transform on
the rows that matter, and the tied decoder (`decoder_weight`, `decoder_bias`) is left to the
pooling, which never builds the full logits matrix (see `splade.py`).

Unpadded, the linear layers (nearly all of a BERT-base's work) see only real tokens, so a batch
costs its tokens whatever the mix of its lengths; attention runs text by text (texts of equal
length side by side, as a sorted batch holds them), where a padded batch paid for its longest text
in every row and a block-diagonal mask for every pair of rows.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from elserve.runtime.attention import KERNELS, Attention, Run
from elserve.runtime.config import ACTIVATIONS, DISTILBERT, BertConfig, ModelFormatError, read_config
from elserve.runtime.kernel_sizes import PACK_MIN_ELEMENTS
from elserve.runtime.layout import HF_WEIGHTS


def _activation(name: str, x: torch.Tensor) -> torch.Tensor:
    mode = ACTIVATIONS[name]
    return F.relu(x) if mode == "relu" else F.gelu(x, approximate=mode)


class OutputFusing(nn.Module):
    """A linear whose kernel can apply what follows it in a layer as it writes its output: the
    activation after the feed-forward's first product, the residual added after the attention's
    output and the feed-forward's second. Each fused op saves a pass over a (tokens, width)
    activation: BERT-base's int8 layers ran about 8% faster, with the same output to the bit
    (docs/performance.md, "The activation and the residual in the product"). These defaults
    run them apart, for kernels that cannot fuse them."""

    def activated(self, x: torch.Tensor, act: str) -> torch.Tensor:
        """`act(self(x))`, `act` a `hidden_act` of `ACTIVATIONS`."""
        return _activation(act, self(x))

    def plus(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """`residual + self(x)`."""
        return residual + self(x)


def _activated(linear: nn.Module, x: torch.Tensor, act: str) -> torch.Tensor:
    return linear.activated(x, act) if isinstance(linear, OutputFusing) else _activation(act, linear(x))


def _plus(linear: nn.Module, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    return linear.plus(x, residual) if isinstance(linear, OutputFusing) else residual + linear(x)


class _Embeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        # One segment only: every token has token type 0.
        x = self.word(input_ids) + self.token_type.weight[0] + self.position.weight[:length]
        return self.norm(x)

    def packed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """`forward` of concatenated texts: `ids` and each token's `positions` in its text, `(tokens,)`."""
        x = self.word(ids) + self.token_type.weight[0] + self.position.weight[positions]
        return self.norm(x)


def length_runs(lengths: torch.Tensor) -> list[Run]:
    """The packed batch's texts as runs of equal lengths, in order."""
    runs: list[Run] = []
    row = 0
    for length in lengths.tolist():
        if runs and runs[-1][2] == length and runs[-1][0] + runs[-1][1] * length == row:
            start, count, _ = runs[-1]
            runs[-1] = (start, count + 1, length)
        else:
            runs.append((row, 1, length))
        row += length
    return runs


def positions_of(lengths: torch.Tensor) -> torch.Tensor:
    """Each row's position in its own text, for texts of `lengths` concatenated."""
    starts = torch.cumsum(lengths, 0) - lengths
    return torch.arange(int(lengths.sum())) - torch.repeat_interleave(starts, lengths)


class _Layer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.heads = config.num_attention_heads
        self.act = config.hidden_act
        # Query, key and value in one linear (their rows stacked, `fused_attention_inputs`): one
        # product over the input instead of three, and for int8 one quantization of it
        # (docs/performance.md, "Query, key and value in one linear").
        self.qkv = nn.Linear(d, 3 * d)
        self.attn_out = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(d, config.intermediate_size)
        self.output = nn.Linear(config.intermediate_size, d)
        self.out_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = self.qkv(x).split(d, dim=-1)
        ctx = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=key_mask)
        x = self.attn_norm(x + self.attn_out(ctx.transpose(1, 2).reshape(b, n, d)))
        return self.out_norm(x + self.output(_activation(self.act, self.intermediate(x))))

    def packed(self, x: torch.Tensor, runs: list[Run], attend: Attention) -> torch.Tensor:
        """`forward` of concatenated texts: `x` is `(tokens, hidden)`, `runs` their texts, `attend`
        the attention kernel (attention.py)."""
        q, k, v = self.qkv(x).split(x.shape[1], dim=-1)  # views: rows of 3 x hidden
        ctx = attend(q, k, v, self.heads, runs)
        x = self.attn_norm(_plus(self.attn_out, ctx, x))
        return self.out_norm(_plus(self.output, _activated(self.intermediate, x, self.act), x))


class _Head(nn.Module):
    """The MLM head: transform (dense, activation, LayerNorm), then the vocabulary decoder."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.act = config.hidden_act
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder_weight = nn.Parameter(torch.empty(config.vocab_size, config.hidden_size))
        self.bias = nn.Parameter(torch.empty(config.vocab_size))


class _PackedLinear(nn.Module):
    """A `Linear` whose weight oneDNN has reordered once into its own blocked layout.

    The layout streams the weights better than the plain one for every batch shape: on the
    BERT-base shape, 1.12x the throughput, and one short text in 31-38 ms instead of 58-62 on one
    thread (20 against 46 ms on two). Same sums in another order: the outputs differ from
    `F.linear` by fp32 rounding (~1e-6 with BERT's initialisation). The packed copy is private to
    the process (a BERT-base's linears: ~340 MB), where the loaded weights are shared page cache.

    Not an `OutputFusing`: with the activation or the residual as post-ops, oneDNN's fp32 linear
    ran 12 of BERT-base's feed-forward linears on 7 rows in 10.6 ms against 6.6, and on 128 rows
    in 33.6 against 31.2 apart (docs/performance.md, "The activation and the residual in the
    product").
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = linear.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")


LAYER_LINEARS = ("qkv", "attn_out", "intermediate", "output")


class BertMaskedLM(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.layers = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))
        self.head = _Head(config)
        # The attention kernel `encode_packed` runs, a name of `attention.KERNELS`: the encoder
        # sets the fastest here at load (`attention.fastest`); copies of the model keep it.
        self.attention = "fused"

    def encode(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Last hidden states `(batch, length, hidden)` of right-padded `input_ids`; a row's
        tokens past its length are padding (their states are meaningless)."""
        n = input_ids.shape[1]
        key_mask = None
        if bool((lengths < n).any()):
            # (batch, 1, 1, length): padding keys take no part in any query's attention.
            key_mask = (torch.arange(n) < lengths[:, None])[:, None, None, :]
        x = self.embeddings(input_ids)
        for layer in self.layers:
            x = layer(x, key_mask)
        return x

    def encode_packed(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Last hidden states `(tokens, hidden)` of texts given concatenated: `ids` `(tokens,)`
        holds the first text's `lengths[0]` token ids, then the next text's, ...; no padding."""
        x = self.embeddings.packed(ids, positions_of(lengths))
        runs = length_runs(lengths)
        attend = KERNELS[self.attention]
        for layer in self.layers:
            x = cast(_Layer, layer).packed(x, runs, attend)  # a ModuleList yields plain Modules to the checker
        return x

    def transform(self, hidden: torch.Tensor) -> torch.Tensor:
        """The MLM head's transform of hidden states `(..., hidden)`; the decoder comes after."""
        head = self.head
        return head.norm(_activated(head.dense, hidden, head.act))

    @property
    def decoder_weight(self) -> torch.Tensor:
        """`(vocab, hidden)`: tied to the word embeddings unless the checkpoint has its own."""
        return self.head.decoder_weight

    @property
    def decoder_bias(self) -> torch.Tensor:
        return self.head.bias

    def with_packed_linears(self) -> BertMaskedLM:
        """A copy whose big fp32 linears are packed for oneDNN (`_PackedLinear`), the rest of its
        tensors shared with this model; this model itself where oneDNN is missing or no linear is
        big enough."""

        def big(model: BertMaskedLM) -> list[tuple[nn.Module, str]]:
            linears = [(layer, name) for layer in model.layers for name in LAYER_LINEARS]
            return [
                (o, n)
                for o, n in [*linears, (model.head, "dense")]
                if getattr(o, n).weight.numel() >= PACK_MIN_ELEMENTS
            ]

        if not torch.backends.mkldnn.is_available() or not big(self):
            return self
        shared = {id(t): t for t in (*self.parameters(), *self.buffers())}
        packed = copy.deepcopy(self, memo=shared)
        for owner, name in big(packed):
            setattr(owner, name, _PackedLinear(getattr(owner, name)))
        return packed


# Checkpoint names (after `bert.` is dropped and gamma/beta become weight/bias) -> ours.
_BERT_RENAMES = [
    (re.compile(r"^embeddings\.word_embeddings\."), "embeddings.word."),
    (re.compile(r"^embeddings\.position_embeddings\."), "embeddings.position."),
    (re.compile(r"^embeddings\.token_type_embeddings\."), "embeddings.token_type."),
    (re.compile(r"^embeddings\.LayerNorm\."), "embeddings.norm."),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\."), r"layers.\1.\2."),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.output\.dense\."), r"layers.\1.attn_out."),
    (re.compile(r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\."), r"layers.\1.attn_norm."),
    (re.compile(r"^encoder\.layer\.(\d+)\.intermediate\.dense\."), r"layers.\1.intermediate."),
    (re.compile(r"^encoder\.layer\.(\d+)\.output\.dense\."), r"layers.\1.output."),
    (re.compile(r"^encoder\.layer\.(\d+)\.output\.LayerNorm\."), r"layers.\1.out_norm."),
    (re.compile(r"^cls\.predictions\.transform\.dense\."), "head.dense."),
    (re.compile(r"^cls\.predictions\.transform\.LayerNorm\."), "head.norm."),
    (re.compile(r"^cls\.predictions\.decoder\.weight$"), "head.decoder_weight"),
    (re.compile(r"^cls\.predictions\.bias$"), "head.bias"),
]
# Weights a masked-LM forward does not use: the pooler, the next-sentence head, and the buffers
# checkpoints (and traced modules) may carry. The decoder bias is the same tensor as
# `cls.predictions.bias` in checkpoints that save both.
_BERT_UNUSED = re.compile(
    r"^(pooler\.|cls\.seq_relationship\.|embeddings\.(position_ids|token_type_ids)$|cls\.predictions\.decoder\.bias$)"
)
_LEGACY_NORM = re.compile(r"(LayerNorm)\.(gamma|beta)$")

# DistilBertForMaskedLM's names (after `distilbert.` is dropped) -> ours: the same layers as BERT's.
_DISTILBERT_RENAMES = [
    (re.compile(r"^embeddings\.word_embeddings\."), "embeddings.word."),
    (re.compile(r"^embeddings\.position_embeddings\."), "embeddings.position."),
    (re.compile(r"^embeddings\.LayerNorm\."), "embeddings.norm."),
    (re.compile(r"^transformer\.layer\.(\d+)\.attention\.q_lin\."), r"layers.\1.query."),
    (re.compile(r"^transformer\.layer\.(\d+)\.attention\.k_lin\."), r"layers.\1.key."),
    (re.compile(r"^transformer\.layer\.(\d+)\.attention\.v_lin\."), r"layers.\1.value."),
    (re.compile(r"^transformer\.layer\.(\d+)\.attention\.out_lin\."), r"layers.\1.attn_out."),
    (re.compile(r"^transformer\.layer\.(\d+)\.sa_layer_norm\."), r"layers.\1.attn_norm."),
    (re.compile(r"^transformer\.layer\.(\d+)\.ffn\.lin1\."), r"layers.\1.intermediate."),
    (re.compile(r"^transformer\.layer\.(\d+)\.ffn\.lin2\."), r"layers.\1.output."),
    (re.compile(r"^transformer\.layer\.(\d+)\.output_layer_norm\."), r"layers.\1.out_norm."),
    (re.compile(r"^vocab_transform\."), "head.dense."),
    (re.compile(r"^vocab_layer_norm\."), "head.norm."),
    (re.compile(r"^vocab_projector\.weight$"), "head.decoder_weight"),
    (re.compile(r"^vocab_projector\.bias$"), "head.bias"),
]
_DISTILBERT_UNUSED = re.compile(r"^embeddings\.position_ids$")


def _rename(key: str, architecture: str) -> str | None:
    """Our parameter name for a checkpoint key, None for weights the forward does not use."""
    if architecture == DISTILBERT:
        key, renames, unused = key.removeprefix("distilbert."), _DISTILBERT_RENAMES, _DISTILBERT_UNUSED
    else:
        key, renames, unused = key.removeprefix("bert."), _BERT_RENAMES, _BERT_UNUSED
        key = _LEGACY_NORM.sub(lambda m: f"{m[1]}.{'weight' if m[2] == 'gamma' else 'bias'}", key)
    if unused.match(key):
        return None
    for pattern, replacement in renames:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    raise ModelFormatError(f"unexpected weight [{key}] for a {architecture} masked-LM")


def sinusoidal_positions(positions: int, hidden: int) -> torch.Tensor:
    """DistilBERT's fixed position embeddings (`sinusoidal_pos_embds`): sin on even, cos on odd dims."""
    position = torch.arange(positions, dtype=torch.float64)[:, None]
    rate = torch.pow(10000.0, 2 * (torch.arange(hidden, dtype=torch.float64) // 2) / hidden)
    angles = position / rate
    out = torch.empty(positions, hidden, dtype=torch.float64)
    out[:, 0::2] = torch.sin(angles[:, 0::2])
    out[:, 1::2] = torch.cos(angles[:, 1::2])
    return out.float()


def fused_attention_inputs(state: dict[str, torch.Tensor], layers: int) -> None:
    """Replace each layer's `query`, `key` and `value` weights and biases in `state` by the `qkv`
    linear's: theirs stacked, query first. A layer whose three are not all there is left as it
    is, for `load_state_dict` to name what is missing."""
    for i in range(layers):
        for kind in ("weight", "bias"):
            names = [f"layers.{i}.{part}.{kind}" for part in ("query", "key", "value")]
            if all(name in state for name in names):
                state[f"layers.{i}.qkv.{kind}"] = torch.cat([state.pop(name) for name in names])


def model_from_weights(
    config: BertConfig, raw: dict[str, torch.Tensor], where: str, described_by: str = "config.json"
) -> BertMaskedLM:
    """The model of `config` with the checkpoint tensors `raw` (HF names, as saved or as a traced
    module holds them), in fp32, for inference; `where` names their file in errors."""
    state: dict[str, torch.Tensor] = {}
    for key, tensor in raw.items():
        name = _rename(key, config.architecture)
        if name is not None:
            state[name] = tensor.float()
    if "head.bias" not in state and "cls.predictions.decoder.bias" in raw:
        state["head.bias"] = raw["cls.predictions.decoder.bias"].float()
    if "head.decoder_weight" not in state and "embeddings.word.weight" in state:
        # Tied decoder: the very same tensor as the word embeddings, not a copy.
        state["head.decoder_weight"] = state["embeddings.word.weight"]
    fused_attention_inputs(state, config.num_hidden_layers)
    if config.architecture == DISTILBERT:
        # No token types: the one embedding every token adds is zeros.
        state.setdefault("embeddings.token_type.weight", torch.zeros(1, config.hidden_size))
        if "embeddings.position.weight" not in state and config.sinusoidal_positions:
            state["embeddings.position.weight"] = sinusoidal_positions(
                config.max_position_embeddings, config.hidden_size
            )
    # Built without memory, then given the loaded tensors themselves (assign=True).
    with torch.device("meta"):
        model = BertMaskedLM(config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise ModelFormatError(f"weights in [{where}] do not match {described_by}: {e}") from e
    return model.eval().requires_grad_(False)


def load_bert(model_dir: Path) -> BertMaskedLM:
    """The model of a Hugging Face directory (config.json and model.safetensors), in fp32, for inference."""
    config = read_config(model_dir)
    path = model_dir / HF_WEIGHTS
    if not path.exists():
        raise ModelFormatError(f"no [{HF_WEIGHTS}] in [{model_dir}]")
    try:
        raw = load_file(str(path))
    except SafetensorError as e:
        raise ModelFormatError(f"cannot read [{path}]: {e}") from e
    return model_from_weights(config, raw, str(path))
