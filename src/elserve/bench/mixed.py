"""The mixed load: the bulk load again, with one query client beside it.

An endpoint's idle latency and its bulk load alone are the HTTP row's own passes
(http_load.measure_http); this pass runs the same bulk load with one client
sending one short text at a time, one every `query_interval_s` (a search box's
pace: 10 a second by default), for as long as it runs. The ratios are the point:
p99 under load over idle p99, and bulk tokens/s with queries over alone. The
queries are paced because a client sending them back to back measures how much
CPU a query costs, not how long it waits: on 2 cores, an unpaced client takes a
core from the bulk.

"Idle" for that p99 is the same client at the same pace with no bulk load
(`paced_latency`), not the row's back-to-back requests: on the machines measured a
query that follows another at once finds the caches as that one left them, while
one sent 100 ms after the last takes 2-3 times as long with nothing else running
(SPLADE-tiny over HTTP, 2 x 1, 2026-12-06: p50 3.1 ms back to back, 8.3 ms paced;
the worker's own CPU time per query 1.5 against 4.2 ms in-process). Against the
back-to-back idle the ratio would count that as the bulk's doing; both are
reported.

What the queries cost the machine is measured beside it (the query lane's CPU
time, as a share of the machine's over the pass): bulk cannot keep more than the
rest, so `1 - share` is the best "bulk x" the machine allows at this pace.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from elserve.bench.corpus import Workload
from elserve.bench.http_load import BulkLoad, InferenceClient, bulk_load, paced_latency
from elserve.bench.isolated import ProgressCallback
from elserve.bench.results import Latency, MixedLoad, Timing

# CPU seconds the server's query lane has used so far (None: not a local server).
CpuClock = Callable[[], float | None]
# The paced idle pass runs as long as the bulk pass, up to this: 300 queries at the default pace.
PACED_IDLE_MAX_S = 30.0


def measure_mixed(
    client: InferenceClient,
    inference_id: str,
    workload: Workload,
    load: BulkLoad,
    *,
    idle: Latency,
    alone: Timing,
    progress: ProgressCallback,
    query_interval_s: float = 0.1,
    lane_cpu: CpuClock = lambda: None,
) -> MixedLoad:
    """The same query client first alone, then beside the bulk load, a query every
    `query_interval_s`; against the row's `idle` latency and bulk `alone`."""
    paced = paced_latency(client, inference_id, query_interval_s, min(load.min_seconds, PACED_IDLE_MAX_S), progress)
    cpu_before = lane_cpu()
    began = time.perf_counter()
    with_queries, probe = bulk_load(client, inference_id, workload, load, progress, probe_interval_s=query_interval_s)
    seconds = time.perf_counter() - began
    cpu_after = lane_cpu()
    share = None
    if cpu_before is not None and cpu_after is not None:
        share = (cpu_after - cpu_before) / (seconds * len(os.sched_getaffinity(0)))
    return MixedLoad(
        idle, Latency.of(probe), alone, with_queries, query_interval_s * 1000, share, paced_idle=Latency.of(paced)
    )
