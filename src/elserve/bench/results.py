"""What one benchmark run measures: timed passes, latencies, memory, agreement; all plain data."""

from __future__ import annotations

from dataclasses import dataclass, field

# One text's vector as a runner gives it, keyed by vocabulary id (in-process) or token (HTTP).
SparseRow = dict[int, float] | dict[str, float]


@dataclass(frozen=True)
class Timing:
    """One timed pass over some texts at one setting (a batch size, a token budget, clients)."""

    setting: int
    seconds: float
    docs: int
    tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Latency:
    """Milliseconds of one short text's request, over `count` sequential requests."""

    p50_ms: float
    p99_ms: float
    count: int

    @classmethod
    def of(cls, seconds: list[float]) -> Latency | None:
        if not seconds:
            return None
        ordered = sorted(seconds)

        def quantile(q: float) -> float:
            # Nearest rank, ceil(q * n) in integers (0.99 * 200 is 198.00000000000003 in floats).
            rank = max(1, -(-round(q * 1000) * len(ordered) // 1000))
            return ordered[min(rank, len(ordered)) - 1] * 1000.0

        return cls(quantile(0.50), quantile(0.99), len(ordered))


@dataclass(frozen=True)
class Agreement:
    """How close a runner's vectors are to elserve's exact ones on the same texts."""

    texts: int
    max_abs_diff: float
    top_k: int
    overlap_mean: float  # share of the reference's top-k tokens the runner also has in its top-k
    overlap_min: float


@dataclass(frozen=True)
class MixedLoad:
    """The bulk load with and without one paced query client beside it (bench/mixed.py)."""

    idle: Latency  # the row's back-to-back requests
    under_load: Latency | None
    bulk_alone: Timing
    bulk_with_queries: Timing
    query_interval_ms: float
    # The query lane's CPU time over the pass with queries, as a share of the machine's (None: not
    # measured, a remote server): what the queries themselves take from the bulk.
    query_cpu_share: float | None = None
    # The same query client at the same pace with no bulk load: what "idle" is for `p99_ratio`
    # (None: not measured; the ratio then falls back to the back-to-back `idle`).
    paced_idle: Latency | None = None

    @property
    def baseline(self) -> Latency:
        """The idle latency the query under load is held against: the paced one where measured."""
        return self.paced_idle if self.paced_idle is not None else self.idle

    @property
    def p99_ratio(self) -> float | None:
        return None if self.under_load is None else self.under_load.p99_ms / self.baseline.p99_ms

    @property
    def throughput_ratio(self) -> float:
        return self.bulk_with_queries.tokens_per_s / self.bulk_alone.tokens_per_s


@dataclass(frozen=True)
class WorkerMemory:
    """One inference process after the load, from /proc/<pid>/smaps_rollup."""

    uss_bytes: int
    pss_bytes: int
    rss_bytes: int
    # proc_memory's roles: "fork server", "model parent", "allocation" (oldest first), "query lane"
    role: str = "allocation"

    @property
    def shared_bytes(self) -> int:
        """Resident pages it shares (with its model's parent and the other workers, and libraries)."""
        return self.rss_bytes - self.uss_bytes


@dataclass
class RunnerResult:
    """One row of the report."""

    name: str
    group: str  # "peer", "elserve" or "http"
    shape: str  # "tiny" or "base"
    setting_name: str  # what `Timing.setting` counts: "batch size", "token budget", "clients"
    best: Timing
    tuning: list[Timing] = field(default_factory=list)
    latency: Latency | None = None
    latency_under_load: Latency | None = None
    peak_rss_bytes: int | None = None
    agreement: Agreement | None = None
    # The machine's 1-minute load average as the row finished: other work on the CPUs shows here.
    load_after: float | None = None
    notes: list[str] = field(default_factory=list)
    # elserve's kernels as its encoder chose them at load (`Encoder.kernels`); None for peers.
    kernels: dict[str, str] | None = None
    mixed: MixedLoad | None = None
    # The fork server, the model's parent, each allocation and the query lane, after the load ...
    workers_memory: list[WorkerMemory] = field(default_factory=list)
    # ... and as the endpoint was created (the query lane starts with the first ingest).
    fresh_memory: list[WorkerMemory] = field(default_factory=list)
    # Vectors of the agreement sample (not written out; compared against elserve exact).
    sample: list[SparseRow] = field(default_factory=list, repr=False)
