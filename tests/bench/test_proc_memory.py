"""The benchmark's memory figures: the inference processes found below a server, by role."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from rich.console import Console

from elserve.bench.mixed_report import memory_table
from elserve.bench.proc_memory import (
    ALLOCATION,
    FORK_SERVER,
    PARENT,
    QUERY_LANE,
    cpu_seconds,
    inference_processes,
    role_cpu_seconds,
)
from elserve.bench.results import RunnerResult, Timing, WorkerMemory
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.deployment import Deployment
from elserve.deployments.parent import running_fork_server_pid
from tests.support.model_factory import build_bert_dir


def test_the_parent_and_each_allocation_are_found_and_reported(tmp_path: Path) -> None:
    model_dir = build_bert_dir(tmp_path / "model")

    async def source() -> Path:
        return model_dir

    async def main() -> list:
        config = DeploymentConfig(deployment_id="d", model_id="m", number_of_allocations=2)
        d = Deployment(config, source, query_lane=False)
        await d.start()
        try:
            # This test's process stands for the server: the processes below it are its inference processes
            # (of this deployment: other tests' servers may run below it too).
            ours = {running_fork_server_pid(), d.parent_pid, *(a.pid for a in d.allocations)}
            return [p for p in inference_processes(os.getpid()) if p.pid in ours]
        finally:
            await d.stop()

    found = asyncio.run(main())
    roles = [p.role for p in found]
    assert roles.count(FORK_SERVER) == 1 and roles.count(PARENT) == 1 and roles.count(ALLOCATION) == 2
    assert roles.index(PARENT) < roles.index(ALLOCATION)  # reported parent first, then the allocations
    for p in found:
        assert 0 < p.memory.uss_bytes <= p.memory.pss_bytes <= p.memory.rss_bytes

    memory = [WorkerMemory(p.memory.uss_bytes, p.memory.pss_bytes, p.memory.rss_bytes, p.role) for p in found]
    row = RunnerResult("elserve http 2x1", "http", "tiny", "clients", Timing(1, 1.0, 1, 1), workers_memory=memory)
    console = Console(width=200, record=True)
    console.print(memory_table([row]))
    text = console.export_text()
    assert "model parent" in text and "first allocation" in text and "extra allocation 1" in text


def test_the_query_lanes_cpu_time_is_read_from_its_process(tmp_path: Path) -> None:
    """What the mixed load charges to the queries: the CPU time of the query lane's worker, which
    grows as it serves them."""
    model_dir = build_bert_dir(tmp_path / "model")

    async def source() -> Path:
        return model_dir

    async def main() -> tuple[float, float, int | None]:
        d = Deployment(DeploymentConfig(deployment_id="d", model_id="m", number_of_allocations=1), source)
        await d.start()
        try:
            await d.infer(["a passage of ingest"], timeout=120, priority="ingest")  # the lane starts on ingest
            assert await d.query_lane.wait(120)
            lane = d.query_lane.running_pid
            before = role_cpu_seconds(os.getpid(), QUERY_LANE)
            after = before
            bulk: asyncio.Future | None = None
            for _ in range(2000):  # CPU time moves in clock ticks: until it has moved
                if bulk is None or bulk.done():  # queries go to the lane while the allocation runs bulk
                    bulk = asyncio.ensure_future(d.infer(["a passage of ingest"] * 64, timeout=120, priority="ingest"))
                    while not d.allocations[0].in_flight and not bulk.done():
                        await asyncio.sleep(0.001)
                await d.infer(["what is elser? " * 20], timeout=120, priority="search")
                after = role_cpu_seconds(os.getpid(), QUERY_LANE)
                if after > before:
                    break
            if bulk is not None:
                await bulk
            return before, after, lane
        finally:
            await d.stop()

    before, after, lane = asyncio.run(main())
    assert lane is not None and after > before >= 0
    assert (cpu_seconds(os.getpid()) or 0) > 0
