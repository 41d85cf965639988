"""The manager places deployments within the node's capacity: real workers, a node of 2 processors."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from elserve.deployments.adaptive import AdaptiveAllocations
from elserve.deployments.capacity import NodeCapacity
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.manager import DeploymentManager
from elserve.deployments.states import DeploymentState
from elserve.models import Catalogue, ModelCache, ModelDownloads, ModelSpec
from tests.support.unloadable_model import build_unloadable_dir

GB = 1 << 30


def _manager(tmp_path: Path, model_dir: Path, processors: int, **more: Path) -> DeploymentManager:
    """A manager on a node of `processors`, serving `model_dir` as `tiny` (and `more` by their ids)."""
    specs = [ModelSpec("tiny", f"file:{model_dir}", None, "SPLADE-tiny")]
    specs += [ModelSpec(model_id, f"file:{path}", None) for model_id, path in more.items()]
    downloads = ModelDownloads(ModelCache(tmp_path / "cache"), Catalogue(specs), progress_bar=False)
    return DeploymentManager(downloads, capacity=NodeCapacity(processors, 16 * GB))


def test_deployments_share_the_processors(tmp_path: Path, splade_model_dir: Path) -> None:
    async def main() -> None:
        manager = _manager(tmp_path, splade_model_dir, processors=2)
        first = manager.start(DeploymentConfig("first", "tiny", number_of_allocations=1))
        assert await first.wait_until("fully_allocated", 300)
        # As a deployment restored beside others: asks for 2 while 1 processor is left.
        adaptive = AdaptiveAllocations(enabled=True, min_number_of_allocations=1, max_number_of_allocations=100)
        second = manager.start(DeploymentConfig("second", "tiny", 2, adaptive_allocations=adaptive))
        assert await second.wait_until("started", 300)
        assert second.state is DeploymentState.STARTED
        assert second.started_allocations == 1 and second.config.number_of_allocations == 2
        assert "free processors [1]" in second.placement_reason
        assert not await second.wait_until("fully_allocated", 0.5)  # waits, and times out

        # The room the first one leaves goes to the second.
        await manager.stop("first")
        assert await second.wait_until("fully_allocated", 300)
        assert second.started_allocations == 2 and second.placement_reason is None

        # What the adaptive scaler asks under heavy load: no more than the node holds.
        await second.scale(50, within_capacity=True)
        assert second.config.number_of_allocations == 2
        assert len(second.allocations) == 2
        await manager.stop_all()

    asyncio.run(main())


# Slow: tests/e2e/test_failed_starts.py checks the same rule through the API in the default run.
@pytest.mark.slow
def test_failed_deployments_leave_their_room(tmp_path: Path, splade_model_dir: Path) -> None:
    """Two deployments whose workers fail at start take nothing from the node: 2 allocations of a good model
    fit on its 2 processors beside them, with no stop in between (issue 25)."""
    broken = build_unloadable_dir(tmp_path / "broken")

    async def main() -> None:
        manager = _manager(tmp_path, splade_model_dir, processors=2, broken=broken)
        failed = []
        for deployment_id in ("broken-1", "broken-2"):
            deployment = manager.start(DeploymentConfig(deployment_id, "broken", number_of_allocations=2))
            assert await deployment.wait_started(300)
            assert deployment.state is DeploymentState.FAILED
            assert "do not match config.json" in (deployment.reason or "")
            failed.append(deployment)
        assert manager.used() == (0, 0)
        # It ran no process to keep: no worker, no model parent.
        for deployment in failed:
            await _settled(lambda d=deployment: not d.allocations and d.parent_pid is None)

        manager.check_start(DeploymentConfig("good", "tiny", number_of_allocations=2))  # no 429
        good = manager.start(DeploymentConfig("good", "tiny", number_of_allocations=2))
        assert await good.wait_until("fully_allocated", 300)
        assert good.started_allocations == 2 and good.placement_reason is None
        # The failed ones stay listed, with their reasons, until stopped.
        assert [d.state for d in manager.all()] == [DeploymentState.FAILED] * 2 + [DeploymentState.STARTED]
        await manager.stop("broken-1")
        assert manager.get("broken-1") is None
        await manager.stop_all()

    asyncio.run(main())


async def _settled(condition, timeout: float = 60.0) -> None:
    """Until `condition()` holds: the failed deployment lets its workers go in the background."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def test_a_deployment_failing_later_stops_what_still_runs(tmp_path: Path, splade_model_dir: Path) -> None:
    """A running deployment whose crashed worker cannot be replaced (its model no longer loads) fails: the
    workers still running are stopped, and the node's room is free again."""

    async def main() -> None:
        manager = _manager(tmp_path, splade_model_dir, processors=2)
        deployment = manager.start(DeploymentConfig("later", "tiny", number_of_allocations=2))
        assert await deployment.wait_until("fully_allocated", 300)
        pids = [a.pid for a in deployment.allocations]
        assert manager.used()[0] == 2
        # The installed model stops loading, then its parent and one worker die: the replacement cannot start.
        installed = manager.downloads.state("tiny").path
        assert installed is not None and deployment.parent_pid is not None
        config = json.loads((installed / "config.json").read_text())
        config["num_hidden_layers"] += 1
        (installed / "config.json").write_text(json.dumps(config))
        os.kill(deployment.parent_pid, signal.SIGKILL)
        os.kill(pids[0], signal.SIGKILL)
        await _settled(lambda: deployment.state is DeploymentState.FAILED)
        assert "do not match config.json" in (deployment.reason or "")
        await _settled(lambda: not deployment.allocations and deployment.parent_pid is None)
        assert not [pid for pid in pids if _alive(pid)]
        assert manager.used() == (0, 0)
        await manager.stop_all()

    asyncio.run(main())


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) runs nothing.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
