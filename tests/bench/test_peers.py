"""The peers compute what elserve computes (they need the `bench` extra)."""

from __future__ import annotations

from pathlib import Path

import pytest

from elserve.bench.agreement import compare
from elserve.bench.corpus import Workload
from elserve.bench.inprocess import ElserveRunner

WINDOW = 512


@pytest.fixture(scope="module")
def reference(splade_model_dir: Path, workload: Workload) -> list:
    return ElserveRunner(splade_model_dir, threads=2).vectors(workload.texts, 4096)


def test_onnxruntime_gives_elserves_vectors(
    tmp_path: Path, splade_model_dir: Path, workload: Workload, reference: list
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    pytest.importorskip("transformers")
    from elserve.bench.onnx_export import export_splade_onnx, onnx_path_for
    from elserve.bench.peers import OnnxRuntimeRunner

    path = export_splade_onnx(splade_model_dir, onnx_path_for(splade_model_dir, tmp_path))
    assert path.is_file() and not list(tmp_path.glob(".*partial"))
    runner = OnnxRuntimeRunner(splade_model_dir, path, threads=2, window=WINDOW)
    for batch_size in (1, 4):
        agreement = compare(reference, runner.vectors(workload.texts, batch_size))
        assert agreement.max_abs_diff < 1e-4
        assert agreement.overlap_min == 1.0


def test_sentence_transformers_gives_elserves_vectors(
    splade_model_dir: Path, workload: Workload, reference: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("sentence_transformers")
    from elserve.bench.peers import OFFLINE_ENV, SentenceTransformersRunner

    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)
    runner = SentenceTransformersRunner(splade_model_dir, threads=2, window=WINDOW)
    for batch_size in (1, 8):
        agreement = compare(reference, runner.vectors(workload.texts, batch_size))
        assert agreement.max_abs_diff < 1e-4
        assert agreement.overlap_min == 1.0
