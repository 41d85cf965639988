"""What can be known of an Elastic-layout model (eland's upload) without building its encoder, for
the sandboxed check an upload gets before it is stored (`operations/upload_check.py`): for each of
the model's tasks, the encoder that task runs is tried on a sample batch.

Above both kinds of TorchScript model, the SPLADE one (`torchscript.py`) and `pass_through`'s
(`pass_through.py`), so neither has to know of the other.
"""

from __future__ import annotations

from pathlib import Path

from elserve.runtime.config import ModelFormatError
from elserve.runtime.elastic_config import PASS_THROUGH, read_task
from elserve.runtime.pass_through import check_pass_through
from elserve.runtime.tokenizer import Tokenizer
from elserve.runtime.torchscript import TorchScriptEncoder, load_script


def check_elastic_model(model_dir: Path) -> None:
    """Its configuration and vocabulary make a tokenizer, its `model.pt` is TorchScript with
    Elasticsearch's inputs, and its output covers the vocabulary (one forward on a few tokens); a
    `pass_through` model's output is any tensor per text. A `ModelFormatError` names the first
    failure."""
    tokenizer = Tokenizer.from_dir(model_dir)
    if read_task(model_dir) == PASS_THROUGH:  # its output is the result: any tensor per text
        check_pass_through(model_dir, tokenizer)
        return
    try:
        TorchScriptEncoder(load_script(model_dir), len(tokenizer.vocab), tokenizer.pad_id)
    except RuntimeError as e:  # the graph itself fails on Elasticsearch's inputs
        raise ModelFormatError(f"the TorchScript model fails on a sample batch: {e}") from e
