"""The HTTP rows of `elserve bench`: one server (started for the run, or `--url`), and per
endpoint its idle latency, its bulk load alone, the same load with paced queries beside it
(mixed.py), the sample vectors and the inference processes' memory."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.progress import Progress, TaskID

from elserve.bench.corpus import Workload
from elserve.bench.http_load import BulkLoad, InferenceClient, measure_http
from elserve.bench.inprocess import EXACT
from elserve.bench.isolated import ProgressCallback, RunnerFailed
from elserve.bench.mixed import CpuClock, measure_mixed
from elserve.bench.options import Allocation, BenchOptions
from elserve.bench.proc_memory import QUERY_LANE, inference_processes, role_cpu_seconds
from elserve.bench.results import MixedLoad, RunnerResult, WorkerMemory
from elserve.bench.server import BenchServer
from elserve.deployments.worker import IDLE_TRIM_S

# (bars, task, label) -> what a runner calls with its progress
ProgressFor = Callable[[Progress, TaskID, str], ProgressCallback]
# (bars, task, shape, runner, error) -> the failed row (none), recorded
Failed = Callable[[Progress, TaskID, str, str, Exception], list[RunnerResult]]


class HttpRows:
    def __init__(self, options: BenchOptions, log_dir: Path, progress_for: ProgressFor, failed: Failed) -> None:
        self.options = options
        self.log_dir = log_dir
        self._progress_for = progress_for
        self._failed = failed

    def run(
        self,
        bars: Progress,
        shape: str,
        model_dir: Path,
        workload: Workload,
        sample_texts: list[str],
        precision: str = EXACT,
    ) -> list[RunnerResult]:
        """Each endpoint of `--allocations` on a server of `precision` (another than exact: the
        first endpoint only)."""
        opts = self.options
        configs = [Allocation.parse(a) for a in opts.allocations]
        if shape != "tiny" and opts.url is not None:
            return []  # a running server serves its own model, not the generated one
        if precision != EXACT:
            configs = configs[:1]
        server: BenchServer | None = None
        if opts.url is not None:
            client = InferenceClient(opts.url, opts.password or "")
            context: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        else:
            # Room for the largest endpoint measured (3x1 on 2 cores is oversubscribed, but measurable).
            widest = max(a.total for a in configs)
            log = self.log_dir / f"{shape}-server-{precision}.log"
            server = BenchServer(model_dir, secrets.token_urlsafe(18), log, processors=widest, precision=precision)
            context = server
        rows: list[RunnerResult] = []
        task = bars.add_task(f"{shape} elserve http: starting the server", total=None)
        try:
            with context:
                if server is not None:
                    client = InferenceClient(server.url, server.password)
                for allocation in configs:
                    rows.append(
                        self._endpoint(bars, task, shape, client, server, allocation, workload, sample_texts, precision)
                    )
        except Exception as e:  # the server or a request failed: report it, keep the other rows
            tail = server.log_tail() if server is not None else ""
            return rows + self._failed(bars, task, shape, "elserve http", RunnerFailed(f"{e}\n{tail}"))
        return rows

    def _endpoint(
        self,
        bars: Progress,
        task: TaskID,
        shape: str,
        client: InferenceClient,
        server: BenchServer | None,
        allocation: Allocation,
        workload: Workload,
        sample_texts: list[str],
        precision: str,
    ) -> RunnerResult:
        opts = self.options
        name = f"elserve http {allocation}" if precision == EXACT else f"elserve http {precision} {allocation}"
        inference_id = f"elserve-bench-{allocation}"
        progress = self._progress_for(bars, task, f"{shape} {name}")
        load = BulkLoad(opts.clients, opts.docs_per_request, opts.row_seconds_for(shape))
        bars.update(task, description=f"{shape} {name}: deploying", total=None, completed=0)
        with client.session() as http:
            began = time.perf_counter()
            client.create_endpoint(http, inference_id, allocation)
            deploy_seconds = time.perf_counter() - began
            fresh_memory = _inference_memory(server)
            try:
                latency_requests = opts.latency_requests_for(shape)
                measured = measure_http(
                    client,
                    inference_id,
                    workload,
                    load,
                    latency_requests=latency_requests,
                    sample_texts=sample_texts,
                    progress=progress,
                )
                mixed: MixedLoad | None = None
                if opts.mixed and measured.latency is not None:
                    try:
                        mixed = measure_mixed(
                            client,
                            inference_id,
                            workload,
                            load,
                            idle=measured.latency,
                            alone=measured.best,
                            progress=progress,
                            query_interval_s=opts.query_interval_ms / 1000,
                            lane_cpu=_lane_cpu(server),
                        )
                    except Exception as e:  # the row's own passes stand: report the mixed pass alone
                        self._failed(bars, task, shape, f"{name} mixed load", RunnerFailed(str(e)))
                rss = server.peak_rss_bytes() if server is not None else None
                memory = _inference_memory(server)
            finally:
                client.delete_endpoint(http, inference_id)
        bars.update(task, description=f"{shape} {name}: {measured.best.tokens_per_s:,.0f} tokens/s")
        return RunnerResult(
            name=name,
            group="http",
            shape=shape,
            setting_name="clients",
            best=measured.best,
            latency=measured.latency,
            latency_under_load=None if mixed is None else mixed.under_load,
            peak_rss_bytes=rss,
            sample=measured.sample,
            mixed=mixed,
            workers_memory=memory,
            fresh_memory=fresh_memory,
            load_after=os.getloadavg()[0],
            notes=[
                f"{opts.docs_per_request} texts a request, random order, >= {load.min_seconds:.0f}s a pass; "
                f"endpoint deployed in {deploy_seconds:.1f}s",
                "peak RSS: server and its workers (sum of each one's VmHWM)" if server else "peak RSS: not local",
            ],
        )


def _lane_cpu(server: BenchServer | None) -> CpuClock:
    process = server.process if server is not None else None
    if process is None:
        return lambda: None
    return lambda: role_cpu_seconds(process.pid, QUERY_LANE)


def _inference_memory(server: BenchServer | None) -> list[WorkerMemory]:
    """The fork server's, the model's parent's and each worker's memory, idle (read once the workers
    have had time to give their free heap back: worker.IDLE_TRIM_S)."""
    if server is None or server.process is None:
        return []
    time.sleep(4 * IDLE_TRIM_S)
    return [
        WorkerMemory(p.memory.uss_bytes, p.memory.pss_bytes, p.memory.rss_bytes, p.role)
        for p in inference_processes(server.process.pid)
    ]
