"""The peers elserve is measured against, on the same model directory: sentence-transformers'
`SparseEncoder` and ONNX Runtime (on the export of `onnx_export.py`). Both need the `bench` extra."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elserve.bench.isolated import ProgressCallback
from elserve.bench.measure import Measured, MeasureJob, measure
from elserve.bench.results import SparseRow

# Nothing may reach a model hub: the peers load the local directory only.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}


@dataclass(frozen=True)
class PeerJob:
    model_dir: Path
    threads: int
    window: int  # the model's window in tokens, specials included (elserve's `Tokenizer.max_length`)
    measure: MeasureJob
    onnx_path: Path | None = None


class SentenceTransformersRunner:
    """`SparseEncoder(Transformer(dir, fill-mask), SpladePooling(max))`: MLM logits, then
    max over tokens of log(1 + relu)."""

    def __init__(self, model_dir: Path, threads: int, window: int) -> None:
        import torch
        from sentence_transformers import SparseEncoder
        from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

        torch.set_num_threads(threads)
        transformer = Transformer(str(model_dir), transformer_task="fill-mask", max_seq_length=window)
        self.model = SparseEncoder(modules=[transformer, SpladePooling(pooling_strategy="max")], device="cpu").eval()

    def encode(self, texts: list[str], setting: int) -> object:
        # The library's own output: one sparse COO tensor for the texts.
        return self.model.encode(texts, batch_size=setting, show_progress_bar=False)

    def vectors(self, texts: list[str], setting: int) -> list[SparseRow]:
        dense = self.model.encode(
            texts, batch_size=setting, show_progress_bar=False, convert_to_sparse_tensor=False
        ).numpy()
        return [_row(d) for d in dense]


class OnnxRuntimeRunner:
    """The exported SPLADE graph in ONNX Runtime: texts length-sorted, padded per batch."""

    def __init__(self, model_dir: Path, onnx_path: Path, threads: int, window: int) -> None:
        import onnxruntime as ort
        import tokenizers

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(window)
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    def encode(self, texts: list[str], setting: int) -> list[tuple[np.ndarray, np.ndarray]]:
        encodings = self.tokenizer.encode_batch_fast(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(texts)  # type: ignore[list-item]
        for start in range(0, len(order), setting):
            batch = order[start : start + setting]
            longest = max(len(encodings[i].ids) for i in batch)
            ids = np.full((len(batch), longest), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), longest), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            (weights,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            for row, i in enumerate(batch):
                nonzero = np.flatnonzero(weights[row])
                out[i] = (nonzero, weights[row, nonzero])
        return out

    def vectors(self, texts: list[str], setting: int) -> list[SparseRow]:
        return [dict(zip(i.tolist(), w.tolist(), strict=True)) for i, w in self.encode(texts, setting)]


def _row(dense: np.ndarray) -> SparseRow:
    nonzero = np.flatnonzero(dense > 0)
    return dict(zip(nonzero.tolist(), dense[nonzero].tolist(), strict=True))


def run_sentence_transformers(job: PeerJob, progress: ProgressCallback) -> Measured:
    """Child entry (see `isolated.run_isolated`)."""
    return measure(SentenceTransformersRunner(job.model_dir, job.threads, job.window), job.measure, progress)


def run_onnxruntime(job: PeerJob, progress: ProgressCallback) -> Measured:
    """Child entry (see `isolated.run_isolated`)."""
    if job.onnx_path is None:
        raise ValueError("the ONNX Runtime peer needs the exported model")
    runner = OnnxRuntimeRunner(job.model_dir, job.onnx_path, job.threads, job.window)
    return measure(runner, job.measure, progress)


def missing_peer_libraries() -> list[str]:
    """The peer libraries missing from this environment (install the `bench` extra)."""
    import importlib.util

    wanted = ["sentence_transformers", "onnxruntime", "onnx", "transformers"]
    return [name for name in wanted if importlib.util.find_spec(name) is None]
