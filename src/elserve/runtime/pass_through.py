"""`pass_through` models: a TorchScript model whose output is the result, as it is.

Elasticsearch (`ML/inference/nlp/PassThroughProcessor.java`, `CORE/ml/inference/results/
PyTorchPassThroughResults.java`) runs the model on the tokenized text and answers, per document,
the model's output for that document as `predicted_value`: a list of rows of doubles (`double[][]`).
A model answering `(texts, tokens, dims)` gives each document its `tokens x dims` rows; one
answering `(texts, dims)` gives each document one row.

Results travel from the workers as SparseVector's two arrays (`indices`, `weights`), as every other
result does: for a dense output, `indices` holds the document's shape (rows, columns) and
`weights` its values row after row (`pack`, and `sparse.unpack`).
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import numpy as np
import torch

from elserve.runtime.config import ModelFormatError
from elserve.runtime.sparse import SparseVector
from elserve.runtime.tokenizer import Tokenizer
from elserve.runtime.torchscript import first_output, load_script, right_padded
from elserve.runtime.workers import run_now


def run_pass_through(
    module: torch.jit.ScriptModule, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The module's first output for a right-padded batch, with the inputs Elasticsearch sends;
    it must be a tensor of one entry per text."""
    output = first_output(module, input_ids, attention_mask)
    if not isinstance(output, torch.Tensor) or output.ndim not in (2, 3) or output.shape[0] != input_ids.shape[0]:
        raise ModelFormatError("a pass_through model must answer a (texts, dims) or (texts, tokens, dims) tensor")
    return output


def pack(document: torch.Tensor) -> SparseVector:
    """One document's output, as its rows (a vector is one row), for the workers' transport."""
    rows = document.reshape(1, -1) if document.ndim == 1 else document
    values = rows.detach().to(torch.float64).numpy()
    return SparseVector(np.asarray(values.shape, dtype=np.int32), values.reshape(-1))


class PassThroughEncoder:
    """The TorchScript model itself; its output packed per document. The same calls as
    `encoder.Encoder` that the workers make."""

    is_padded = True
    # One batch at a time, on torch's intra-op threads (`submit_ids` runs it in the caller's thread).
    side_by_side = False

    def __init__(self, module: torch.jit.ScriptModule, pad_token_id: int = 0) -> None:
        self.module = module
        self.pad_token_id = pad_token_id
        self.kernels = {"layers": "torchscript", "head_short": "none", "head_bulk": "none"}

    def use_threads(self, num_threads: int) -> None:
        torch.set_num_threads(num_threads)

    def submit_ids(self, batch: list[np.ndarray]) -> Future[list[SparseVector]]:
        """`encode_ids`, run now in the caller's thread: nothing runs beside it (`side_by_side`)."""
        return run_now(lambda: self.encode_ids(batch))

    def encode_ids(self, batch: list[np.ndarray]) -> list[SparseVector]:
        if not batch:
            return []
        ids, mask = right_padded(batch, self.pad_token_id)
        with torch.inference_mode():
            output = run_pass_through(self.module, ids, mask)
        # Elasticsearch runs each document alone: a per-token output covers its own tokens, not the
        # batch's padding.
        if output.ndim == 3:
            return [pack(output[row, : max(1, len(one))]) for row, one in enumerate(batch)]
        return [pack(output[row]) for row in range(len(batch))]


def check_pass_through(model_dir: Path, tokenizer: Tokenizer) -> None:
    """The model loads with Elasticsearch's inputs and answers a tensor per text on a sample batch
    (a `ModelFormatError` names the failure)."""
    encoder = PassThroughEncoder(load_script(model_dir), tokenizer.pad_id)
    sample = np.arange(min(len(tokenizer.vocab), 4), dtype=np.int32)
    try:
        encoder.encode_ids([sample, sample[:1]])
    except RuntimeError as e:  # the graph itself fails on Elasticsearch's inputs
        raise ModelFormatError(f"the TorchScript model fails on a sample batch: {e}") from e
