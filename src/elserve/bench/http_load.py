"""End to end over HTTP: an endpoint on a running server, concurrent clients posting batches of
the corpus, and one short text's latency with the server idle and under that load."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.synchronize import Event

import httpx
import orjson

from elserve.bench.corpus import Workload
from elserve.bench.isolated import ProgressCallback
from elserve.bench.measure import SHORT_TEXT
from elserve.bench.options import Allocation
from elserve.bench.results import Latency, SparseRow, Timing

USER = "elastic"
TASK_TYPE = "sparse_embedding"
# The inference timeout a bulk client sets on each request (`?timeout=`), instead of the
# interactive default of 30s (Elasticsearch's `InferenceAction.Request.DEFAULT_TIMEOUT`). An indexer
# chooses its own: elasticsearch-py's bulk helpers (`streaming_bulk`, `parallel_bulk`) set none,
# so a request gets the client's `request_timeout` (elastic_transport's `NodeConfig`: 10s), which
# indexers raise to minutes for slow pipelines. A bulk client here waits for its place in a queue of
# `clients` requests on a busy model: minutes, not seconds, at BERT-base's size on 2 cores.
BULK_TIMEOUT = "300s"


@dataclass(frozen=True)
class BulkLoad:
    """The bulk clients: how many, texts a request, and how long a pass lasts at least."""

    clients: int
    docs_per_request: int
    min_seconds: float = 0.0


@dataclass(frozen=True)
class HttpMeasured:
    best: Timing  # the bulk load alone
    latency: Latency | None  # one short text, the endpoint idle
    sample: list[SparseRow]


class InferenceClient:
    """The few inference API calls the benchmark makes, as the `elastic` user."""

    def __init__(self, url: str, password: str, timeout: float = 600.0) -> None:
        self.url = url
        self.password = password
        self.timeout = timeout

    def session(self) -> httpx.Client:
        # One connection pool per thread: httpx clients are not shared across threads here.
        return httpx.Client(base_url=self.url, auth=(USER, self.password), timeout=self.timeout)

    def create_endpoint(self, http: httpx.Client, inference_id: str, allocation: Allocation) -> None:
        body = {
            "service": "elasticsearch",
            "service_settings": {
                "model_id": ".elser_model_2",
                "num_allocations": allocation.allocations,
                "num_threads": allocation.threads,
            },
        }
        self.delete_endpoint(http, inference_id)
        _check(http.put(f"/_inference/{TASK_TYPE}/{inference_id}", json=body, params={"timeout": "600s"}))

    def delete_endpoint(self, http: httpx.Client, inference_id: str) -> None:
        response = http.delete(f"/_inference/{TASK_TYPE}/{inference_id}", params={"force": "true"})
        if response.status_code != 404:
            _check(response)

    def infer(
        self, http: httpx.Client, inference_id: str, texts: list[str], timeout: str | None = None
    ) -> list[dict[str, float]]:
        """The vectors of `texts`; `timeout`: the inference API's own (`?timeout=`, 30s when absent)."""
        params = {} if timeout is None else {"timeout": timeout}
        response = _check(http.post(f"/_inference/{TASK_TYPE}/{inference_id}", json={"input": texts}, params=params))
        results = orjson.loads(response.content)[TASK_TYPE]
        if len(results) != len(texts):
            raise RuntimeError(f"{len(texts)} texts sent, {len(results)} vectors back")
        return [r["embedding"] for r in results]


def measure_http(
    client: InferenceClient,
    inference_id: str,
    workload: Workload,
    load: BulkLoad,
    *,
    latency_requests: int,
    sample_texts: list[str],
    progress: ProgressCallback,
) -> HttpMeasured:
    """Idle latency, then the bulk load alone (the row's tokens/s), then the sample vectors.

    The corpus goes in random order (as clients send it), `load.docs_per_request` texts a
    request, for at least `load.min_seconds`. Nothing else runs beside it: a query client beside
    the bulk is the mixed pass's (mixed.py), paced as a search box sends queries.
    """
    with client.session() as http:
        client.infer(http, inference_id, workload.texts[: load.docs_per_request])  # warm the workers
        idle = idle_latency(client, http, inference_id, latency_requests, progress)
        bulk, _ = bulk_load(client, inference_id, workload, load, progress)
        sample: list[SparseRow] = []
        if sample_texts:
            sample.extend(client.infer(http, inference_id, sample_texts))
    return HttpMeasured(bulk, Latency.of(idle), sample)


def idle_latency(
    client: InferenceClient, http: httpx.Client, inference_id: str, requests: int, progress: ProgressCallback
) -> list[float]:
    """Seconds of `requests` sequential requests of one short text, on an otherwise idle endpoint."""
    idle = []
    for i in range(requests):
        began = time.perf_counter()
        client.infer(http, inference_id, [SHORT_TEXT])
        idle.append(time.perf_counter() - began)
        if i % 20 == 0:
            progress("idle short-text latency", i, requests)
    progress("idle short-text latency", requests, requests)
    return idle


def bulk_load(
    client: InferenceClient,
    inference_id: str,
    workload: Workload,
    load: BulkLoad,
    progress: ProgressCallback,
    probe_interval_s: float | None = None,
) -> tuple[Timing, list[float]]:
    """The bulk load; with `probe_interval_s`, a client beside it sending one short text every
    `probe_interval_s` for as long as the load runs, whose latencies come back.

    The clients send the corpus in a random order (seeded; texts arrive as clients send them, not
    sorted by length), pass after pass, until it was sent whole once and `load.min_seconds` have
    gone by; the texts of the requests answered are credited. Each request carries a bulk
    indexer's timeout (`BULK_TIMEOUT`), not the interactive default."""
    clients, docs_per_request, min_seconds = load.clients, load.docs_per_request, load.min_seconds
    # The query client's process is started (and its start waited for) before the clock starts.
    prober = _Probe(client, inference_id, probe_interval_s) if probe_interval_s else None
    began = time.perf_counter()
    batches = _shuffled_batches(workload.docs, docs_per_request, lambda: time.perf_counter() - began >= min_seconds)
    lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []
    completed = 0
    tokens = 0
    label = f"{clients} clients x {docs_per_request} texts" + (" + queries" if probe_interval_s else "")

    def next_batch() -> list[int] | None:
        with lock:
            return next(batches, None)

    def send() -> None:
        nonlocal completed, tokens
        _lower_this_thread()
        try:
            with client.session() as http:
                while not done.is_set() and (batch := next_batch()) is not None:
                    client.infer(http, inference_id, [workload.texts[i] for i in batch], BULK_TIMEOUT)
                    with lock:
                        completed += len(batch)
                        tokens += sum(workload.token_counts[i] for i in batch)
                        count = completed
                    progress(label, count, workload.docs)
        except BaseException as e:
            errors.append(e)
            done.set()

    workers = [threading.Thread(target=send, name=f"bench client {i}", daemon=True) for i in range(clients)]
    if prober is not None:
        prober.begin()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - began
    done.set()
    probe = prober.stop() if prober is not None else []
    if errors:
        raise errors[0]
    return Timing(clients, seconds, completed, tokens), probe


def _lower_this_thread() -> None:
    """Run this bulk client thread at the allocations' OS priority: the clients stand for indexers
    on other machines, so on the server's own cores they must not take the CPU from what the server
    runs above its allocations (its event loop, the query lane) when they parse their answers.
    The query client keeps the normal priority, as the search box it stands for."""
    # Imported here: the query client's process (spawned) need not load the deployments' modules.
    from elserve.deployments.deployment import ALLOCATION_NICE

    with contextlib.suppress(OSError, AttributeError):  # not Linux (a thread's own nice): as they are
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ALLOCATION_NICE)


# Spawned, not forked: the bench holds threads (the bulk clients, its progress bar).
_SPAWN = multiprocessing.get_context("spawn")


class _Probe:
    """The latency probe in a process of its own, as a search client is not a thread of the ingest's
    process: beside the bulk clients' threads, a probe's answer would wait for the GIL while they
    parse theirs, and the client's own waits would count as the server's."""

    def __init__(self, client: InferenceClient, inference_id: str, interval_s: float) -> None:
        self._done = _SPAWN.Event()
        self._go = _SPAWN.Event()
        ready = _SPAWN.Event()
        self._results: multiprocessing.Queue = _SPAWN.Queue()
        self._process = _SPAWN.Process(
            target=_probe,
            args=(client, inference_id, interval_s, ready, self._go, self._done, self._results),
            name="bench latency probe",
            daemon=True,
        )
        self._process.start()
        if not ready.wait(120):
            self._process.kill()
            raise RuntimeError("the latency probe did not start")

    def begin(self) -> None:
        """Start sending queries (the bulk load starts now)."""
        self._go.set()

    def stop(self) -> list[float]:
        self._done.set()
        self._go.set()  # a probe never begun ends at once
        outcome = self._results.get(timeout=600)
        self._process.join(60)
        if isinstance(outcome, str):
            raise RuntimeError(f"latency probe: {outcome}")
        return outcome


def _probe(
    client: InferenceClient,
    inference_id: str,
    interval_s: float,
    ready: Event,
    go: Event,
    done: Event,
    results: multiprocessing.Queue,
) -> None:
    """Once `go` is set, one short text every `interval_s` until `done`; the latencies go to
    `results` (or the error's text)."""
    latencies: list[float] = []
    try:
        with client.session() as http:
            ready.set()
            go.wait()
            next_at = time.perf_counter()
            while not done.is_set():
                began = time.perf_counter()
                client.infer(http, inference_id, [SHORT_TEXT])
                if not done.is_set():  # a request that outlived the load saw no load at its end
                    latencies.append(time.perf_counter() - began)
                next_at = max(next_at + interval_s, time.perf_counter())
                done.wait(max(0.0, next_at - time.perf_counter()))  # the pace; the load's end cuts it short
    except Exception as e:
        results.put(f"{type(e).__name__}: {e}")
        return
    results.put(latencies)


def paced_latency(
    client: InferenceClient, inference_id: str, interval_s: float, seconds: float, progress: ProgressCallback
) -> list[float]:
    """Seconds of one short text sent every `interval_s` for `seconds`, with nothing else running:
    the mixed pass's query client (the same process and pace) without the bulk load."""
    prober = _Probe(client, inference_id, interval_s)
    label = f"idle queries, one every {interval_s * 1000:.0f} ms"
    began = time.perf_counter()
    prober.begin()
    while (elapsed := time.perf_counter() - began) < seconds:
        progress(label, int(elapsed), int(seconds))
        time.sleep(min(1.0, seconds - elapsed))
    progress(label, int(seconds), int(seconds))
    return prober.stop()


def _shuffled_batches(docs: int, size: int, enough: Callable[[], bool]) -> Iterator[list[int]]:
    """Batches of `size` text indices, each pass over the corpus in its own seeded random order,
    until a pass has ended and `enough()` holds."""
    passes = 0
    while passes == 0 or not enough():
        order = list(range(docs))
        random.Random(passes).shuffle(order)
        for start in range(0, docs, size):
            yield order[start : start + size]
        passes += 1


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}: "
            f"{response.text[:1000]}"
        )
    return response
