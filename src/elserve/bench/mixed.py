"""The mixed load: the bulk load again, with one query client beside it.

An endpoint's idle latency and its bulk load alone are the HTTP row's own passes
(http_load.measure_http); this pass runs the same bulk load with one client
sending one short text at a time, one every `query_interval_s` (a search box's
pace: 10 a second by default), for as long as it runs. The ratios are the point:
p99 under load over idle p99, and bulk tokens/s with queries over alone. The
queries are paced because a client sending them back to back measures how much
CPU a query costs, not how long it waits: on 2 cores, an unpaced client takes a
core from the bulk.

What the queries cost the machine is measured beside it (the query lane's CPU
time, as a share of the machine's over the pass): bulk cannot keep more than the
rest, so `1 - share` is the best "bulk x" the machine allows at this pace.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from elserve.bench.corpus import Workload
from elserve.bench.http_load import BulkLoad, InferenceClient, bulk_load
from elserve.bench.isolated import ProgressCallback
from elserve.bench.results import Latency, MixedLoad, Timing

# CPU seconds the server's query lane has used so far (None: not a local server).
CpuClock = Callable[[], float | None]


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
    """The bulk load with a query every `query_interval_s`, against the row's `idle` latency and
    bulk `alone`."""
    cpu_before = lane_cpu()
    began = time.perf_counter()
    with_queries, probe = bulk_load(client, inference_id, workload, load, progress, probe_interval_s=query_interval_s)
    seconds = time.perf_counter() - began
    cpu_after = lane_cpu()
    share = None
    if cpu_before is not None and cpu_after is not None:
        share = (cpu_after - cpu_before) / (seconds * len(os.sched_getaffinity(0)))
    return MixedLoad(idle, Latency.of(probe), alone, with_queries, query_interval_s * 1000, share)
