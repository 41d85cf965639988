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

import threading
import time
from elserve.bench.corpus import Workload
from elserve.bench.http_load import InferenceClient, _batches
from elserve.bench.isolated import ProgressCallback
from elserve.bench.measure import SHORT_TEXT
from elserve.bench.results import Latency, MixedLoad, Timing


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
) -> MixedLoad:
    with client.session() as http:
        client.infer(http, inference_id, workload.texts[:docs_per_request])  # warm the workers (and the lane)
        idle = []
        for i in range(latency_requests):
            began = time.perf_counter()
            client.infer(http, inference_id, [SHORT_TEXT])
            idle.append(time.perf_counter() - began)
            if i % 20 == 0:
                progress("idle short-text latency", i, latency_requests)
    alone, _ = _bulk(client, inference_id, workload, clients, docs_per_request, None, progress)
    with_queries, probe = _bulk(
        client, inference_id, workload, clients, docs_per_request, query_interval_s, progress
    )
    idle_latency = Latency.of(idle)
    assert idle_latency is not None
    return MixedLoad(idle_latency, Latency.of(probe), alone, with_queries, query_interval_s * 1000)


def _bulk(
    client: InferenceClient,
    inference_id: str,
    workload: Workload,
    clients: int,
    docs_per_request: int,
    query_interval_s: float | None,
    progress: ProgressCallback,
) -> tuple[Timing, list[float]]:
    """One pass of the bulk load; with `query_interval_s`, a query client beside it."""
    with_queries = query_interval_s is not None
    batches = _batches(workload.docs, docs_per_request)
    lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []
    probe: list[float] = []
    completed = 0
    label = f"{clients} clients x {docs_per_request} texts" + (" + queries" if with_queries else "")

    def next_batch() -> range | None:
        with lock:
            return next(batches, None)

    def load() -> None:
        nonlocal completed
        try:
            with client.session() as http:
                while not done.is_set() and (batch := next_batch()) is not None:
                    client.infer(http, inference_id, workload.texts[batch.start : batch.stop])
                    with lock:
                        completed += len(batch)
                        count = completed
                    progress(label, count, workload.docs)
        except BaseException as e:
            errors.append(e)
            done.set()

    def query() -> None:
        try:
            with client.session() as http:
                next_at = time.perf_counter()
                while not done.is_set():
                    began = time.perf_counter()
                    client.infer(http, inference_id, [SHORT_TEXT])
                    if not done.is_set():  # a request that outlived the load saw no load at its end
                        probe.append(time.perf_counter() - began)
                    next_at = max(next_at + query_interval_s, time.perf_counter())
                    done.wait(next_at - time.perf_counter())  # the pace; the load's end cuts it short
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=load, name=f"bench client {i}", daemon=True) for i in range(clients)]
    prober = threading.Thread(target=query, name="bench query client", daemon=True)
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    if with_queries:
        prober.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    done.set()
    if with_queries:
        prober.join()
    if errors:
        raise errors[0]
    return Timing(clients, seconds, workload.docs, workload.tokens), probe
