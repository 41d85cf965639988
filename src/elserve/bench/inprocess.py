"""elserve's encoder in-process: length-sorted batches cut by a token budget, as the server cuts them."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from elserve.bench.isolated import ProgressCallback
from elserve.bench.measure import Measured, MeasureJob, measure
from elserve.bench.results import SparseRow
from elserve.runtime import Encoder
from elserve.runtime.cpu import bf16_refusal

EXACT = "exact"


def precisions() -> list[str]:
    """The precisions this build's `Encoder.load` offers (only `exact` before it takes `precision`)
    and this CPU runs (bf16 only with native bfloat16: `cpu.bf16_refusal`)."""
    if "precision" not in inspect.signature(Encoder.load).parameters or bf16_refusal():
        return [EXACT]
    return [EXACT, "bf16"]


@dataclass(frozen=True)
class InProcessJob:
    model_dir: Path
    threads: int
    precision: str
    measure: MeasureJob


class ElserveRunner:
    def __init__(self, model_dir: Path, threads: int, precision: str = EXACT) -> None:
        options = {} if precision == EXACT and len(precisions()) == 1 else {"precision": precision}
        self.encoder = Encoder.load(model_dir, num_threads=threads, **options)
        self.kernels = getattr(self.encoder, "kernels", None)

    def encode(self, texts: list[str], setting: int) -> object:
        return self.encoder.encode(texts, max_batch_tokens=setting)

    def vectors(self, texts: list[str], setting: int) -> list[SparseRow]:
        return [
            dict(zip(v.indices.tolist(), v.weights.tolist(), strict=True))
            for v, _ in self.encoder.encode(texts, max_batch_tokens=setting)
        ]


def run_elserve(job: InProcessJob, progress: ProgressCallback) -> Measured:
    """Child entry (see `isolated.run_isolated`)."""
    return measure(ElserveRunner(job.model_dir, job.threads, job.precision), job.measure, progress)
