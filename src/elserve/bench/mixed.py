"""The mixed load: bulk clients with and without one sequential query client beside them.

Three passes on one endpoint: a short text alone (idle latency), the bulk load
alone (tokens/s), then the same bulk load with one client sending one short text
at a time, one every `query_interval_s` (a search box's pace: 10 a second by
default), for as long as it runs (latency under load, and the bulk's tokens/s
again). The ratios are the point: p99 under load over idle p99, and bulk tokens/s
with queries over without. The queries are paced because a client sending them
back to back measures how much CPU a query costs, not how long it waits: on 2
cores, an unpaced client answered in 5-20 ms takes a core from the bulk.
"""

from __future__ import annotations

from elserve.bench.corpus import Workload
from elserve.bench.http_load import InferenceClient, bulk_load, idle_latency
from elserve.bench.isolated import ProgressCallback
from elserve.bench.results import Latency, MixedLoad


def measure_mixed(
    client: InferenceClient,
    inference_id: str,
    workload: Workload,
    *,
    clients: int,
    docs_per_request: int,
    latency_requests: int,
    progress: ProgressCallback,
    query_interval_s: float = 0.1,
    min_seconds: float = 0.0,
) -> MixedLoad:
    with client.session() as http:
        client.infer(http, inference_id, workload.texts[:docs_per_request])  # warm the workers (and the lane)
        idle = idle_latency(client, http, inference_id, latency_requests, progress)
    alone, _ = bulk_load(
        client, inference_id, workload, clients, docs_per_request, 0, progress, min_seconds=min_seconds
    )
    with_queries, probe = bulk_load(
        client,
        inference_id,
        workload,
        clients,
        docs_per_request,
        2**31,
        progress,
        probe_interval_s=query_interval_s,
        min_seconds=min_seconds,
    )
    idle_summary = Latency.of(idle)
    assert idle_summary is not None
    return MixedLoad(idle_summary, Latency.of(probe), alone, with_queries, query_interval_s * 1000)
