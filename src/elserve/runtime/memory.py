"""What a deployment of a model needs, known before it runs: derived from the model's tensors and
what this runtime builds from them.

Every allocation is a worker forked from one parent per model (deployments/parent.py), which holds
the model; a worker holds only what it writes itself:

    parent = PROCESS + weights + packed + head
    allocation = WORKER + weights / 32 + activations

- `PROCESS`: a process before any model's tensors: Python, PyTorch, tokenizers and the runtime's
  first kernels (oneDNN code), its pages shared with the fork server included. Measured (torch 2.13
  CPU, AMD EPYC): 158 MB.
- `weights`: every tensor of the checkpoint as fp32 (`model.safetensors`, or the TorchScript's
  state, or its graph's constants when it has no state: script_graph.py), shared tensors (a tied
  decoder) once.
- `packed`: the encoder layers' linears of at least `kernel_sizes.PACK_MIN_ELEMENTS` weights, copied once
  into oneDNN's blocked layout (`bert._PackedLinear`); counted whether or not this torch build has
  oneDNN (every x86-64 and aarch64 build has): an estimate may err high, never low. Under
  `precision int8` the int8 copies of the layers' linears take its place: one or two (`int8.Int8Layers`)
  of 1 byte a weight, within the 4 bytes a weight counted; the head's transform stays packed.
- `head`: the exact head's int8 decoder rows (vocab x hidden bytes), the screen's per-entry factors
  (6 x vocab fp32), and the product kernel's own copy of the decoder: at most the fp32 transpose of
  `products.Fp32Products` (4 x vocab x hidden); an int8 kernel keeps 1 x, the plain head none. The
  kernel is chosen at load by measurement, so the bound is taken.
- `WORKER + weights / 32`: what a forked worker writes of its own when idle (its heap, its threads'
  stacks, the objects whose reference counts it touches): measured 15 MB for SPLADE-tiny and 30 MB
  for a BERT-base-sized model after batches.
- `activations` of the largest batch (`max_batch_tokens` padded tokens, `T`): a layer's live
  tensors (the input, query/key/value, the attention's output and two intermediate-width tensors:
  `T x (4 hidden + 2 intermediate)` fp32; attention runs blockwise), the head's float64 copies of
  the token rows (`33 T x hidden` bytes over the screen and the finish), and its two 4 MiB blocks. A
  worker gives them back when idle, so this is the peak an allocation is seen with.

A deployment needs the parent (shared by every deployment of the model), one allocation per
allocation and one more for its query lane (deployments/lanes.py). Checked against the processes
that then run in tests/e2e/test_model_upload.py (a ratio band).
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open

from elserve.runtime.config import BertConfig, ModelFormatError, read_config
from elserve.runtime.elastic_config import PASS_THROUGH, read_task
from elserve.runtime.kernel_sizes import PACK_MIN_ELEMENTS, ROW_BLOCK, VOCAB_BLOCK
from elserve.runtime.layout import ELASTIC_MODEL, HF, HF_WEIGHTS, layout_of

PROCESS_BYTES = 158 * 2**20
WORKER_BYTES = 16 * 2**20
_WORKER_SHARE_OF_WEIGHTS = 32
_FP32 = 4
# The screen's float64 copies and int8 rows of the token rows, per token x hidden (see module doc).
_HEAD_BYTES_PER_ROW_VALUE = 33
_HEAD_FACTORS_PER_ENTRY = 6 * _FP32


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    weights_bytes: int
    packed_bytes: int
    head_bytes: int
    activation_bytes: int

    @property
    def parent_bytes(self) -> int:
        """The model's parent: the runtime and the model, shared by every allocation forked from it."""
        return PROCESS_BYTES + self.weights_bytes + self.packed_bytes + self.head_bytes

    @property
    def allocation_bytes(self) -> int:
        """One allocation at its peak: what its worker writes of its own, and the largest batch."""
        return WORKER_BYTES + self.weights_bytes // _WORKER_SHARE_OF_WEIGHTS + self.activation_bytes


@dataclass(frozen=True, slots=True)
class _Shapes:
    """What the estimate needs of a model: its tensors' shapes and its window."""

    tensors: dict[str, tuple[int, ...]]
    vocab: int
    hidden: int
    intermediate: int


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _hf_shapes(model_dir: Path) -> _Shapes:
    config: BertConfig = read_config(model_dir)
    with safe_open(str(model_dir / HF_WEIGHTS), framework="numpy") as f:
        tensors = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118  # safe_open has keys() but is not iterable
    return _Shapes(tensors, config.vocab_size, config.hidden_size, config.intermediate_size)


# What the upload check (a child process: operations/upload_check.py) read of an uploaded TorchScript
# model, kept beside it: the server sizes the model from this instead of loading uploaded code itself.
SHAPES_FILE = "shapes.json"


def shapes_record(model_dir: Path) -> dict[str, Any]:
    """What `SHAPES_FILE` holds: the model's shapes as the estimate reads them, loading the model."""
    shapes = _elastic_shapes(model_dir)
    return {
        "tensors": {k: list(s) for k, s in shapes.tensors.items()},
        "vocab": shapes.vocab,
        "hidden": shapes.hidden,
        "intermediate": shapes.intermediate,
    }


def _recorded_shapes(record: dict[str, Any]) -> _Shapes:
    if "error" in record:  # the check could not read the model: it is not loaded here either
        raise ModelFormatError(str(record["error"]))
    tensors = {str(k): tuple(int(d) for d in s) for k, s in record["tensors"].items()}
    return _Shapes(tensors, int(record["vocab"]), int(record["hidden"]), int(record["intermediate"]))


def _elastic_shapes(model_dir: Path) -> _Shapes:
    recorded = model_dir / SHAPES_FILE
    if recorded.is_file():
        try:
            return _recorded_shapes(json.loads(recorded.read_text()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ModelFormatError(f"[{SHAPES_FILE}] of the model cannot be read: {e}") from e
    import torch  # only for a model without a shapes record (this module is imported without torch)

    from elserve.runtime.script_graph import script_state

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(model_dir / ELASTIC_MODEL), map_location="cpu")
    seen: set[int] = set()
    tensors = {}
    for key, tensor in script_state(module).items():
        if tensor.untyped_storage().data_ptr() in seen:
            continue  # a tied decoder: the word embeddings once
        seen.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tuple(tensor.shape)
    words = next((s for k, s in tensors.items() if k.endswith("word_embeddings.weight")), None)
    if words is None and read_task(model_dir) == PASS_THROUGH:
        # Any module may be passed through: sized by its weights alone (no vocabulary head; the
        # activations of a one-wide model).
        return _Shapes(tensors, 1, 1, 1)
    if words is None:
        raise ModelFormatError(f"[{model_dir / ELASTIC_MODEL}] has no word embeddings to size it by")
    widths = [
        s[0]
        for k, s in tensors.items()
        if "embeddings" not in k and len(s) == 2 and s[1] == words[1] and s[0] not in (words[1], words[0])
    ]
    return _Shapes(tensors, words[0], words[1], max(widths, default=4 * words[1]))


@functools.lru_cache(maxsize=32)
def _shapes(model_dir: Path, stamp: float) -> _Shapes:
    del stamp  # part of the cache key: a changed directory is read again
    return _hf_shapes(model_dir) if layout_of(model_dir) == HF else _elastic_shapes(model_dir)


def read_shapes(model_dir: Path) -> None:
    """Read (and keep) what the estimate needs of `model_dir` now: for a TorchScript model that is a
    load of the module, better done once, off the server's event loop."""
    _shapes(model_dir, model_dir.stat().st_mtime)


def estimate_memory(model_dir: Path, max_batch_tokens: int) -> MemoryEstimate:
    """The memory a deployment of `model_dir` needs, batches of up to `max_batch_tokens` included."""
    shapes = _shapes(model_dir, model_dir.stat().st_mtime)
    weights = sum(_numel(s) for s in shapes.tensors.values()) * _FP32
    packed = sum(
        _numel(s) * _FP32
        for key, s in shapes.tensors.items()
        if len(s) == 2
        and "embeddings" not in key
        and shapes.vocab not in s  # the decoder stays as it is
        and _numel(s) >= PACK_MIN_ELEMENTS
    )
    vocab, hidden = shapes.vocab, shapes.hidden
    head = vocab * hidden * (1 + _FP32) + vocab * _HEAD_FACTORS_PER_ENTRY
    tokens = max_batch_tokens
    activations = (
        tokens * (4 * hidden + 2 * shapes.intermediate) * _FP32
        + tokens * hidden * _HEAD_BYTES_PER_ROW_VALUE
        + 2 * ROW_BLOCK * VOCAB_BLOCK * _FP32
    )
    return MemoryEstimate(weights, packed, head, activations)
