"""What `elserve bench` was asked to do, as one frozen value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SHAPES = ("tiny", "base", "both")


@dataclass(frozen=True)
class Allocation:
    """`num_allocations` x `num_threads` of one endpoint, written `1x2`."""

    allocations: int
    threads: int

    @classmethod
    def parse(cls, text: str) -> Allocation:
        try:
            allocations, threads = (int(part) for part in text.lower().split("x"))
        except ValueError:
            raise ValueError(f"an allocation is ALLOCATIONSxTHREADS, such as 1x2; got [{text}]") from None
        if allocations < 1 or threads < 1:
            raise ValueError(f"allocations and threads must be at least 1; got [{text}]")
        return cls(allocations, threads)

    def __str__(self) -> str:
        return f"{self.allocations}x{self.threads}"

    @property
    def total(self) -> int:
        return self.allocations * self.threads


@dataclass(frozen=True)
class BenchOptions:
    corpus: Path | None = None  # None: ../shared/bench/corpus.jsonl beside the checkout
    limit: int | None = None
    model_dir: Path | None = None  # None: `.elser_model_2` from the data directory's cache
    data_dir: Path = Path("data")
    model_shape: str = "both"  # base (a random BERT-base, ELSER v2's size), tiny, or both (base first)
    base_limit: int = 100  # texts for the BERT-base shape, which costs ~100x per token
    threads: int = 2
    # elserve's precisions to run in-process (and int8 over HTTP); None: every one this CPU offers.
    precisions: tuple[str, ...] | None = None
    peers: bool = True
    inprocess: bool = True
    http: bool = True
    url: str | None = None  # an already running server instead of one started for the run
    password: str | None = None
    allocations: tuple[str, ...] = ("1x2", "2x1")
    clients: int = 8
    docs_per_request: int = 16
    latency_requests: int = 1000
    # One short text at BERT-base's size costs ~100x SPLADE-tiny's: fewer requests, same p99 rank.
    base_latency_requests: int = 200
    # The mixed-load passes (bulk alone, bulk with a query client sending one every query_interval_ms).
    mixed: bool = True
    query_interval_ms: float = 100.0
    # Each row's load lasts at least this long, the corpus run again as needed: an in-process row's
    # timed passes, and each bulk pass over HTTP (the row's, and the mixed one). A stable rate, and
    # a query p99 of a few hundred queries. BERT-base's rows are the headline: a minute each;
    # SPLADE-tiny's can be shorter (`tiny_row_seconds`).
    row_seconds: float = 60.0
    tiny_row_seconds: float = 60.0
    tune_docs: int = 256
    sample_docs: int = 32
    st_batch_sizes: tuple[int, ...] = (1, 8, 32)
    ort_batch_sizes: tuple[int, ...] = (1, 4, 16)
    token_budgets: tuple[int, ...] = (2048, 4096, 8192)
    output: Path | None = None  # None: bench-results/<timestamp>.json

    def __post_init__(self) -> None:
        if self.model_shape not in SHAPES:
            raise ValueError(f"--model-shape must be one of {', '.join(SHAPES)}; got [{self.model_shape}]")
        for name in ("threads", "clients", "docs_per_request", "base_limit", "tune_docs", "base_latency_requests"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("row_seconds", "tiny_row_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be at least 1")
        for allocation in self.allocations:
            Allocation.parse(allocation)
        if self.precisions is not None:
            from elserve.bench.inprocess import EXACT  # loads torch: only when precisions are named

            if EXACT not in self.precisions:
                raise ValueError(f"--precisions must include {EXACT} (the reference every row is compared with)")
        if self.url is not None and self.password is None:
            raise ValueError("--url needs --password (of the elastic user)")

    @property
    def shapes(self) -> list[str]:
        return ["base", "tiny"] if self.model_shape == "both" else [self.model_shape]

    def row_seconds_for(self, shape: str) -> float:
        """How long each HTTP bulk pass of `shape` lasts at least."""
        return self.tiny_row_seconds if shape == "tiny" else self.row_seconds

    def latency_requests_for(self, shape: str) -> int:
        """Sequential short-text requests of `shape`'s latency rows."""
        return self.latency_requests if shape == "tiny" else min(self.latency_requests, self.base_latency_requests)
