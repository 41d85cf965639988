"""elserve's encoder in-process: length-sorted batches cut by a token budget, as the server cuts them."""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass
from pathlib import Path

from elserve.bench.isolated import ProgressCallback
from elserve.bench.measure import Measured, MeasureJob, measure
from elserve.bench.results import SparseRow
from elserve.runtime import Encoder, heap
from elserve.runtime.agreement import fidelity, held_out_queries
from elserve.runtime.cpu import bf16_refusal
from elserve.runtime.int8 import machine_int8_refusal

EXACT = "exact"


def precisions() -> list[str]:
    """The precisions this build's `Encoder.load` offers (only `exact` before it takes `precision`)
    and this CPU runs (bf16 only with native bfloat16: `cpu.bf16_refusal`; int8 where its product
    beats fp32: `int8.machine_int8_refusal`; a model may still refuse it at load)."""
    if "precision" not in inspect.signature(Encoder.load).parameters:
        return [EXACT]
    offered = [EXACT] if bf16_refusal() else [EXACT, "bf16"]
    return offered if machine_int8_refusal() else [*offered, "int8"]


@dataclass(frozen=True)
class InProcessJob:
    model_dir: Path
    threads: int
    precision: str
    measure: MeasureJob


def _splade_encoder(model_dir: Path, threads: int, **options: str) -> Encoder:
    """The model as elserve's own encoder: the benchmark measures a SPLADE masked-LM, not a model
    that runs as its own TorchScript."""
    encoder = Encoder.load(model_dir, num_threads=threads, **options)
    if not isinstance(encoder, Encoder):
        raise ValueError(f"[{model_dir}] runs as its own TorchScript, not as a SPLADE masked-LM: nothing to measure")
    return encoder


class ElserveRunner:
    def __init__(self, model_dir: Path, threads: int, precision: str = EXACT) -> None:
        # As a server's model parent loads and its worker then runs (this runs in a process of its
        # own): the heap kept, the model loaded on one thread, then the threads (in one malloc
        # arena where the encoder needs it).
        heap.keep_freed()
        options = {} if precision == EXACT and len(precisions()) == 1 else {"precision": precision}
        self.encoder = _splade_encoder(model_dir, 1, **options)
        self.encoder.use_threads(threads)
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


@dataclass(frozen=True)
class FidelityJob:
    model_dir: Path
    threads: int
    precision: str
    texts: list[str]
    queries: int


def run_fidelity(job: FidelityJob, progress: ProgressCallback) -> dict:
    """Child entry: `agreement.fidelity` of `job.precision` against exact, on the texts with the last
    `job.queries` of them held out as queries (the measurement the tests run test-sized)."""
    exact = _splade_encoder(job.model_dir, job.threads)
    other = _splade_encoder(job.model_dir, job.threads, precision=job.precision)
    passages, queries = held_out_queries(job.texts, job.queries)
    return asdict(fidelity(exact, other, passages, queries))
