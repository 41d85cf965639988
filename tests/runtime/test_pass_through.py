"""`pass_through` models: loaded from an Elastic-layout directory, run as themselves, their output
carried per document and given back as rows of doubles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from elserve.runtime.config import ModelFormatError
from elserve.runtime.encoder import Encoder
from elserve.runtime.memory import shapes_record
from elserve.runtime.model_check import check_elastic_model
from elserve.runtime.pass_through import PassThroughEncoder, pack
from elserve.runtime.sparse import unpack
from elserve.runtime.tokenizer import Tokenizer
from tests.pass_through_model import CONFIG, VOCABULARY, torchscript


def _model_dir(tmp_path: Path, pooled: bool = False, vocabulary: list[str] = VOCABULARY) -> Path:
    (tmp_path / "model.pt").write_bytes(torchscript(pooled))
    (tmp_path / "vocab.json").write_text(json.dumps({"vocabulary": vocabulary}))
    (tmp_path / "trained_model_config.json").write_text(json.dumps(CONFIG))
    return tmp_path


def test_pack_and_unpack_keep_rows_and_doubles() -> None:
    rows = torch.tensor([[1.5, -2.0], [0.1, 3.0], [4.0, 5.0]], dtype=torch.float64)
    assert unpack(pack(rows)) == [[1.5, -2.0], [0.1, 3.0], [4.0, 5.0]]
    assert unpack(pack(torch.tensor([2.0, 7.25]))) == [[2.0, 7.25]]  # a vector is one row


def test_a_pass_through_model_loads_as_itself_and_answers_its_output(tmp_path: Path) -> None:
    model_dir = _model_dir(tmp_path)
    check_elastic_model(model_dir)
    encoder = Encoder.load(model_dir, num_threads=1)
    assert isinstance(encoder, PassThroughEncoder)
    tokenizer = Tokenizer.from_dir(model_dir)
    ids = [e.ids for e in tokenizer.encode_batch(["words are my", "these"])]
    assert [list(i) for i in ids] == [[5, 3, 4], [2]]  # no [CLS]/[SEP]: with_special_tokens false
    first, second = encoder.encode_ids(ids)
    assert unpack(first) == [[5.0], [3.0], [4.0]]
    assert unpack(second) == [[2.0]]  # its own tokens only, not the batch's padding
    # One batch at a time: a worker never sends it one "beside" another, and `submit_ids` runs it now.
    assert not encoder.side_by_side
    assert [unpack(a) for a in encoder.submit_ids(ids).result(timeout=0)] == [unpack(first), unpack(second)]


def test_a_two_dimensional_output_is_one_row_per_document(tmp_path: Path) -> None:
    encoder = Encoder.load(_model_dir(tmp_path, pooled=True), num_threads=1)
    answers = encoder.encode_ids([np.array([5, 3], dtype=np.int32), np.array([4], dtype=np.int32)])
    assert [unpack(a) for a in answers] == [[[2.0, 8.0]], [[1.0, 4.0]]]


def test_a_model_without_weights_is_sized_by_what_it_has(tmp_path: Path) -> None:
    record = shapes_record(_model_dir(tmp_path))
    assert record["tensors"] == {} and record["vocab"] == 1


def test_without_special_tokens_the_vocabulary_needs_no_cls_or_sep(tmp_path: Path) -> None:
    Tokenizer.from_dir(_model_dir(tmp_path))
    config = json.loads((tmp_path / "trained_model_config.json").read_text())
    config["inference_config"]["pass_through"]["tokenization"]["bert"]["with_special_tokens"] = True
    (tmp_path / "trained_model_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFormatError, match=r"lacks the BERT special tokens \['\[CLS\]', '\[SEP\]'\]"):
        Tokenizer.from_dir(tmp_path)


def test_a_model_answering_no_tensor_per_text_is_refused(tmp_path: Path) -> None:
    class Scalar(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
            return a.sum().float()

    model_dir = _model_dir(tmp_path)
    torch.jit.save(torch.jit.script(Scalar()), str(model_dir / "model.pt"))
    with pytest.raises(ModelFormatError, match="pass_through model must answer"):
        check_elastic_model(model_dir)
