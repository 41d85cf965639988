"""The SPLADE encoder: token ids in, sparse vectors out (tokenize -> forward -> pool)."""

from __future__ import annotations

import copy
import itertools
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import torch

from elserve.precision import Precision
from elserve.runtime import heap
from elserve.runtime.attention import fastest
from elserve.runtime.bert import BertMaskedLM, load_bert
from elserve.runtime.config import ModelFormatError
from elserve.runtime.cpu import bf16_refusal
from elserve.runtime.elastic_config import PASS_THROUGH, read_task
from elserve.runtime.head import MARGIN, ExactHead
from elserve.runtime.int8 import checked_int8_layers, kernel_of
from elserve.runtime.kernel_sizes import BATCH_TOKENS
from elserve.runtime.layout import HF, layout_of
from elserve.runtime.pass_through import PassThroughEncoder
from elserve.runtime.screening import SMALL_ROWS
from elserve.runtime.sparse import SparseVector
from elserve.runtime.timing import sample_batch
from elserve.runtime.tokenizer import Encoded, Tokenizer
from elserve.runtime.torchscript import TorchScriptEncoder, extract_masked_lm, load_script
from elserve.runtime.workers import Workers

# The precisions (elserve/precision.py); the runtime takes them as plain strings, their values.
EXACT = Precision.EXACT.value
BF16 = Precision.BF16.value
INT8 = Precision.INT8.value
# `exact`: fp32 layers, and a vocabulary head whose weights are those of a float64 head (see
# screening.py), within a few 1e-6 of the plain fp32 computation (its own rounding).
# `bf16`: opt-in, the encoder layers in bfloat16 (~1.5x as fast on CPUs with AVX-512 BF16), then
# the same exact head on their output (a bf16 head is slower than the int8-screened one). Measured
# with `agreement.py` on the first 500 texts of the benchmark corpus: top-20 overlap 0.995 (lowest
# 0.95), largest weight difference 0.083. Refused on a CPU without native bf16 (`cpu.bf16_refusal`),
# where it would be ~15x slower than exact.
# `int8`: opt-in, the encoder layers' linears with int8 weights (rounded by GPTQ at load,
# int8_weights.py) and dynamic 8-bit activations
# (7-bit where the CPU's int8 product would saturate) on the faster of fbgemm's and oneDNN's
# kernels here, for short requests and bulk batches apart (int8.py), then the same exact head. Its
# agreement is measured by `agreement.fidelity` (the benchmark states it, docs/performance.md
# records it). Refused where it is not faster than exact
# on the model's own layers, measured at load (`int8.checked_int8_layers`).
PRECISIONS = tuple(p.value for p in Precision)
# Batches of at least this many tokens are split between the workers (see workers.py); a
# smaller one runs whole on one of them, single-threaded ...
PARALLEL_TOKENS = 64
# ... unless the encoder layers hold more than this many bytes, well past the last-level cache
# (32 MiB here): then fetching the weights is the cost, and torch's intra-op threads share it.
# One short text over HTTP, 1 allocation x 2 threads, BERT-base: p50 23-24 ms, p99 29-40 ms,
# against 35-37 and 45-49 ms on one worker thread. (SPLADE-tiny, 1.6 MB of layers, stays on one
# thread: intra-op threads there cost it a p99 of 15-22 ms, see workers.py.)
STREAMED_LAYER_BYTES = 64 * 2**20


class Encoder:
    """A BERT masked-LM with SPLADE max pooling; exact unless built with `precision="bf16"` or `"int8"`."""

    # The encoder layers and the vocabulary head run on real tokens only: a batch costs its tokens.
    is_padded = False

    def __init__(
        self, model: BertMaskedLM, tokenizer: Tokenizer, precision: str = EXACT, head: str | None = None
    ) -> None:
        """`head`: one option of `head.ExactHead` for every batch (tests, benchmarks); by default
        the fastest exact one of this machine, measured now."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got [{precision}]")
        if precision == BF16 and (refusal := bf16_refusal()):
            raise ValueError(refusal)
        vocab_size = model.config.vocab_size
        if len(tokenizer.vocab) > vocab_size:
            raise ModelFormatError(
                f"the tokenizer has [{len(tokenizer.vocab)}] tokens but the model only [{vocab_size}]"
            )
        if tokenizer.max_length > model.config.max_position_embeddings:
            raise ModelFormatError(
                f"the tokenizer's window of [{tokenizer.max_length}] tokens is longer than the model's "
                f"[{model.config.max_position_embeddings}] positions"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.precision = precision
        # Big batches are split between single-threaded workers, one per intra-op thread torch
        # has now (`load` sets it first); see workers.py for why not intra-op threads.
        self._workers = Workers(torch.get_num_threads())
        self._streams_weights = streams_weights(model)
        # Models whose embedding matrix is padded past the tokenizer's vocabulary get no weight
        # for those rows: no text maps to them and they have no token to be rendered as.
        scored = len(tokenizer.vocab)
        # A text of this model's own tokens, to time the kernels on.
        sample = sample_batch(scored, 1, 32)
        # The attention kernel fastest here in the layers' dtype (int8's attention runs in fp32),
        # set before the layers below are copied from the model.
        config = model.config
        dtype = torch.bfloat16 if precision == BF16 else torch.float32
        model.attention = fastest(config.hidden_size, config.num_attention_heads, dtype, MARGIN)
        # The layers that run: the model with its big linears packed for oneDNN where that is
        # faster here, or a bfloat16 copy of it (the head keeps the fp32 decoder).
        self._layers, layers = _choose_layers(model, precision, sample)
        # What a short request runs (up to SMALL_ROWS token rows): the same layers, except where
        # int8's kernels part between short and bulk batches (int8.Int8Layers).
        self._short_layers = self._layers
        int8 = None
        if precision == INT8:
            chosen = checked_int8_layers(model, self._layers, scored)
            self._short_layers, self._layers = chosen.short, chosen.bulk
            int8, short = kernel_of(chosen.bulk), kernel_of(chosen.short)
            layers = f"int8-{int8.kernel}"
        with torch.inference_mode():
            rows = self._rows([sample[0].numpy()], sample[1].numpy())
        # The head LayerNorm's shift is in every row the head sees: the screen's centre.
        self._head = ExactHead(
            model.decoder_weight[:scored], model.decoder_bias[:scored], model.head.norm.bias, rows, only=head
        )
        # What this machine runs, for the log and the benchmark.
        self.kernels = {
            "layers": layers,
            "attention": model.attention,
            "head_short": self._head.choice.short,
            "head_bulk": self._head.choice.bulk,
        }
        if int8 is not None:
            self.kernels["layers_short"] = f"int8-{short.kernel}"
            self.kernels["int8_activations"] = f"{int8.activation_bits}-bit"
            if short.activation_bits != int8.activation_bits:
                self.kernels["int8_activations"] += f", {short.activation_bits}-bit short"

    @classmethod
    def load(
        cls, model_dir: Path, num_threads: int | None = None, precision: str = EXACT, head: str | None = None
    ) -> LoadedEncoder:
        """Load `model_dir` of either layout (`layout.py`); `num_threads` sets torch's intra-op
        threads (process-wide) and how many workers split a batch; `precision` is `exact` (the
        default) or the opt-in `bf16` or `int8` (see `PRECISIONS`); `head` as for the constructor.

        A TorchScript model (Elastic layout) whose weights are a BERT or DistilBERT masked-LM runs
        as this encoder (`torchscript.extract_masked_lm`); any other runs as the TorchScript itself,
        exact in fp32 whatever `precision` asks (`TorchScriptEncoder`)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got [{precision}]")
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        tokenizer = Tokenizer.from_dir(model_dir)
        if layout_of(model_dir) == HF:
            return cls(load_bert(model_dir), tokenizer, precision, head)
        module = load_script(model_dir)
        if read_task(model_dir) == PASS_THROUGH:
            return PassThroughEncoder(module, tokenizer.pad_id)
        model = extract_masked_lm(module)
        if model is None:
            return TorchScriptEncoder(module, len(tokenizer.vocab), tokenizer.pad_id)
        del module  # its weights now live in `model` (shared tensors)
        return cls(model, tokenizer, precision, head)

    @property
    def one_arena(self) -> bool:
        """Whether the threads that split a batch share malloc's main arena (runtime/heap.py): a big
        model's split batches allocate buffers past what a thread's own arena keeps, while a small
        model's threads run faster in their own (docs/performance.md, "A worker keeps its heap")."""
        return self._streams_weights

    def use_threads(self, num_threads: int) -> None:
        """Run on `num_threads` from now on: torch's intra-op threads and the workers that split a
        batch, in one malloc arena where `one_arena`. For a process forked from one that loaded the
        encoder on one thread (no thread crosses a fork, and none must have started before it: see
        deployments/parent_process.py)."""
        if self.one_arena:  # before the threads start: a thread keeps the arena it first takes
            heap.share_one_arena()
        torch.set_num_threads(num_threads)
        self._workers.close()
        self._workers = Workers(num_threads)

    @property
    def vocab(self) -> list[str]:
        return self.tokenizer.vocab

    @property
    def max_length(self) -> int:
        return self.tokenizer.max_length

    def tokenize(self, texts: list[str]) -> list[Encoded]:
        return self.tokenizer.encode_batch(texts)

    def encode_ids(self, batch: list[np.ndarray]) -> list[SparseVector]:
        """The SPLADE vector of each token id sequence ([CLS]/[SEP] included), in order.

        Nothing is padded: the layers and the head see each text's real tokens only (texts of
        equal length next to each other share their attention's products).
        """
        if not batch:
            return []
        lengths = self._checked_lengths(batch)
        with torch.inference_mode():
            groups = self._groups(lengths)
            if len(groups) == 1 and self._streams_weights:  # in this thread, on the intra-op threads
                return self._encode(batch, lengths)
            parts = self._workers.map(
                lambda g: self._encode(batch[g.start : g.stop], lengths[g.start : g.stop]), groups
            )
        return [vector for part in parts for vector in part]

    @property
    def side_by_side(self) -> bool:
        """Whether `submit_ids` can run batches beside each other, one per thread."""
        return self._workers.size > 1

    def submit_ids(self, batch: list[np.ndarray]) -> Future[list[SparseVector]]:
        """`encode_ids` of the batch whole, on one of the threads, single-threaded, beside whatever
        the others run: a worker with a backlog keeps each thread on a batch of its own instead of
        splitting every batch between them, whose halves wait for each other at its end (on a
        busy machine, the slower half sets the pace of both: docs/performance.md)."""
        return self._workers.submit(lambda: self._encode_whole(batch))

    def _encode_whole(self, batch: list[np.ndarray]) -> list[SparseVector]:
        """`encode_ids` of the batch whole, in this thread, on the intra-op threads it has."""
        if not batch:
            return []
        lengths = self._checked_lengths(batch)
        with torch.inference_mode():
            return self._encode(batch, lengths)

    def _checked_lengths(self, batch: list[np.ndarray]) -> np.ndarray:
        """The batch's lengths, once every sequence's length and ids are known to fit the model."""
        lengths = np.fromiter((len(ids) for ids in batch), dtype=np.int64, count=len(batch))
        limit = self.model.config.max_position_embeddings
        if lengths.min() < 1 or lengths.max() > limit:
            raise ValueError(
                f"every id sequence needs 1 to {limit} tokens, got lengths {lengths.min()}..{lengths.max()}"
            )
        lowest = min(int(ids.min()) for ids in batch)
        highest = max(int(ids.max()) for ids in batch)
        if lowest < 0 or highest >= self.model.config.vocab_size:
            raise ValueError(f"token ids must be in [0, {self.model.config.vocab_size}), got {lowest}..{highest}")
        return lengths

    def _groups(self, lengths: np.ndarray) -> list[range]:
        """The batch cut into one group of texts per worker, or kept whole when it is too small
        for splitting to pay."""
        if self._workers.size == 1 or len(lengths) == 1 or int(lengths.sum()) < PARALLEL_TOKENS:
            return [range(len(lengths))]
        # Cut where the tokens (a group's cost, near enough) cross equal shares.
        total = np.cumsum(lengths)
        cuts = np.searchsorted(total, total[-1] * np.arange(1, self._workers.size) / self._workers.size)
        bounds = [0, *(int(c) + 1 for c in cuts), len(lengths)]
        return [range(a, b) for a, b in itertools.pairwise(bounds) if b > a]

    def _encode(self, batch: list[np.ndarray], lengths: np.ndarray) -> list[SparseVector]:
        rows = self._rows(batch, lengths)
        text, entry, weights = self._head.pool(rows, torch.from_numpy(lengths))
        return _vectors(len(batch), text.numpy(), entry.numpy(), weights.numpy())

    def _rows(self, batch: list[np.ndarray], lengths: np.ndarray) -> torch.Tensor:
        """The head-transformed states of the texts' real tokens, `(sum(lengths), hidden)` fp32,
        text after text: no padding anywhere (see bert.py)."""
        ids = torch.from_numpy(np.concatenate(batch).astype(np.int64, copy=False))
        layers = self._short_layers if ids.shape[0] <= SMALL_ROWS else self._layers
        hidden = layers.encode_packed(ids, torch.from_numpy(lengths))
        return layers.transform(hidden).float()

    def encode(self, texts: list[str], max_batch_tokens: int = BATCH_TOKENS) -> list[tuple[SparseVector, bool]]:
        """Tokenize and encode `texts`: `(vector, is_truncated)` for each, in order.

        Texts are run in length-sorted batches of at most `max_batch_tokens` tokens (a batch's cost
        is the sum of its texts' lengths: the layers run unpadded). Where that makes more than one
        batch and the encoder has several threads, it is a backlog, run as a server's worker runs
        one (`submit_ids`): one batch per thread, each cut to its thread's share of the budget,
        each thread taking the next as it ends its own, instead of every batch split between the
        threads and its halves waiting for each other.
        """
        encoded = self.tokenize(texts)
        lengths = [len(e.ids) for e in encoded]
        # Two texts or more past the budget: more than one batch, so a backlog.
        backlog = self.side_by_side and len(lengths) > 1 and sum(lengths) > max_batch_tokens
        budget = max(1, max_batch_tokens // self._workers.size) if backlog else max_batch_tokens
        batches = _sorted_batches(lengths, budget)
        ids = [[encoded[i].ids for i in batch] for batch in batches]
        parts = self._workers.map(self._encode_whole, ids) if backlog else [self.encode_ids(b) for b in ids]
        vectors: dict[int, SparseVector] = {}
        for batch, part in zip(batches, parts, strict=True):
            vectors.update(zip(batch, part, strict=True))
        return [(vectors[i], e.is_truncated) for i, e in enumerate(encoded)]


def _sorted_batches(lengths: list[int], max_batch_tokens: int) -> list[list[int]]:
    """The texts' indices, shortest first, cut into consecutive batches of at most
    `max_batch_tokens` tokens (a longer text alone in its own)."""
    batches: list[list[int]] = []
    tokens = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if not batches or tokens + lengths[i] > max_batch_tokens:
            batches.append([])
            tokens = 0
        batches[-1].append(i)
        tokens += lengths[i]
    return batches


def _choose_layers(
    model: BertMaskedLM, precision: str, sample: tuple[torch.Tensor, torch.Tensor]
) -> tuple[BertMaskedLM, str]:
    """The layers to run and their name: a bf16 copy, or for `exact` the model with its big
    linears packed for oneDNN unless the plain ones are faster on `sample` here (packed: 1.12x
    the throughput of plain on an AVX-512 EPYC for BERT-base; other CPUs, other oneDNN kernels)."""
    if precision == BF16:
        return copy.deepcopy(model).to(torch.bfloat16), "bf16"
    ids, lengths = sample
    seconds = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # so that this thread's CPU time is all of it
    try:
        packed = model.with_packed_linears()
        if packed is model:
            return model, "plain"
        with torch.inference_mode():
            for name, layers in (("packed", packed), ("plain", model)):
                layers.encode_packed(ids, lengths)  # warm
                started = time.thread_time()
                layers.encode_packed(ids, lengths)
                seconds[name] = time.thread_time() - started
    except (RuntimeError, NotImplementedError, AttributeError):  # no oneDNN linear on this build or CPU
        return model, "plain"
    finally:
        torch.set_num_threads(threads)
    if seconds["packed"] <= seconds["plain"] * MARGIN:
        return packed, "packed"
    return model, "plain"


def streams_weights(model: BertMaskedLM) -> bool:
    """Whether the model's encoder layers outgrow the caches (`STREAMED_LAYER_BYTES`)."""
    return sum(p.numel() * p.element_size() for p in model.layers.parameters()) > STREAMED_LAYER_BYTES


def _vectors(texts: int, text: np.ndarray, entry: np.ndarray, weight: np.ndarray) -> list[SparseVector]:
    """One vector per text from `(text, entry, weight)` triples sorted by text then entry: the
    positive weights, highest first, ties by id ascending (as `sparse.sparsify` orders them)."""
    keep = weight > 0
    text, entry, weight = text[keep], entry[keep], weight[keep]
    bounds = np.searchsorted(text, np.arange(texts + 1))
    vectors = []
    for start, end in itertools.pairwise(bounds):
        weights = weight[start:end]
        # Stable, on ids already ascending: equal weights stay in id order.
        order = np.argsort(-weights, kind="stable")
        vectors.append(SparseVector(entry[start:end][order].astype(np.int32), weights[order].astype(np.float32)))
    return vectors


# What `Encoder.load` gives: the exact encoder, or a model run as itself (its TorchScript, or pass-through).
LoadedEncoder = Encoder | TorchScriptEncoder | PassThroughEncoder
