"""Queries before bulk: the lane rule, and the order in which real workers answer."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from elserve.deployments.config import DeploymentConfig
from elserve.deployments.deployment import ALLOCATION_NICE, Deployment
from elserve.deployments.lanes import is_search, parse_request_priority
from elserve.errors import IllegalArgumentException
from tests.support.waiting import wait_until_async

# No request here has a timeout: they wait for what real workers take, however slow the machine.
BULK = [f"document number {i} about cats and dogs" for i in range(40)]


def _deployment(model_dir: Path, *, query_lane: bool) -> Deployment:
    async def source() -> Path:
        return model_dir

    # Batches of at most 16 tokens: the bulk request is some twenty batches, queued at once.
    return Deployment(DeploymentConfig("d", "m", 1), source, max_batch_tokens=16, query_lane=query_lane)


@pytest.mark.parametrize(
    ("tokens", "priority", "search"),
    [
        ([5], None, True),
        ([30, 30, 30, 30], None, True),
        ([30] * 5, None, False),  # too many inputs
        ([200], None, False),  # a document, not a query
        ([200], "search", True),
        ([5], "ingest", False),
    ],
)
def test_search_or_ingest(tokens: list[int], priority: str | None, search: bool) -> None:
    assert is_search(tokens, priority) is search


def test_priority_parameter_values() -> None:
    assert parse_request_priority(None) is None
    assert parse_request_priority("ingest") == "ingest"
    with pytest.raises(IllegalArgumentException) as info:
        parse_request_priority("urgent")
    assert info.value.reason == "[priority] must be one of [search, ingest], got [urgent]"


def test_queries_are_answered_before_bulk(splade_model_dir: Path) -> None:
    async def main() -> None:
        d = _deployment(splade_model_dir, query_lane=False)  # one worker first: the order is the queue's alone
        await d.start()
        done: list[str] = []

        async def run(name: str, texts: list[str], priority: str | None = None) -> None:
            await d.infer(texts, None, priority)
            done.append(name)

        # All four are queued before the worker takes the first batch (short texts are tokenized inline).
        await asyncio.gather(
            run("bulk", BULK),
            run("query", ["cats"]),
            run("forced", BULK[:8], "search"),  # many inputs, served as a query on request
            run("demoted", ["dogs"], "ingest"),  # one input, queued as ingest on request
        )
        assert done == ["query", "forced", "demoted", "bulk"]

        # With the query lane, a query does not even wait for the bulk batch the allocation runs.
        d.query_lane.enabled = True
        await d.infer(BULK[:8], None)  # ingest: starts the lane
        assert await d.query_lane.wait(300)
        [allocation] = d.allocations
        assert os.getpriority(os.PRIO_PROCESS, allocation.pid) == ALLOCATION_NICE
        assert os.getpriority(os.PRIO_PROCESS, d.query_lane.allocation.pid) == os.getpriority(os.PRIO_PROCESS, 0)
        lane = d.query_lane.allocation
        # An idle deployment answers a query on the allocation, with all its threads.
        served = (allocation.freed_at, lane.freed_at)
        await d.infer(["cats"], None)
        assert allocation.freed_at > served[0] and lane.freed_at == served[1]
        bulk = asyncio.ensure_future(d.infer(BULK * 8, None))  # some hundred and sixty batches
        # A query sent while the allocation runs a bulk batch goes to the lane; one that reaches the
        # dispatcher between two bulk batches finds the allocation idle and runs there: ask again.
        while lane.freed_at == served[1] and not bulk.done():
            while not allocation.in_flight and not bulk.done():  # the allocation runs a bulk batch
                await asyncio.sleep(0.001)
            await d.infer(["cats"], None)
        assert lane.freed_at > served[1]  # the lane answered a query under bulk
        await bulk

        # kill -9 of the lane: queries go on (to the idle allocation); it is dropped, and ingest starts another.
        dead = d.query_lane.allocation.pid
        os.kill(dead, signal.SIGKILL)
        assert len(await d.infer(["cats"], None)) == 1
        await wait_until_async(lambda: d.query_lane.allocation is None)
        await d.infer(BULK[:8], None)
        assert await d.query_lane.wait(300) and d.query_lane.allocation.pid != dead
        assert len(await d.infer(["dogs"], None)) == 1
        await d.stop()

    asyncio.run(main())
