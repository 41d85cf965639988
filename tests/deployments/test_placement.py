"""The manager places deployments within the node's capacity: real workers, a node of 2 processors."""

from __future__ import annotations

import asyncio
from pathlib import Path

from elserve.deployments.capacity import NodeCapacity
from elserve.deployments.config import AdaptiveConfig, DeploymentConfig
from elserve.deployments.manager import DeploymentManager
from elserve.deployments.states import DeploymentState
from elserve.models import Catalogue, ModelCache, ModelDownloads, ModelSpec

GB = 1 << 30


def _manager(tmp_path: Path, model_dir: Path, processors: int) -> DeploymentManager:
    catalogue = Catalogue([ModelSpec("tiny", f"file:{model_dir}", None, "SPLADE-tiny")])
    downloads = ModelDownloads(ModelCache(tmp_path / "cache"), catalogue, progress_bar=False)
    return DeploymentManager(downloads, capacity=NodeCapacity(processors, 16 * GB))


def test_deployments_share_the_processors(tmp_path: Path, splade_model_dir: Path) -> None:
    async def main() -> None:
        manager = _manager(tmp_path, splade_model_dir, processors=2)
        first = manager.start(DeploymentConfig("first", "tiny", number_of_allocations=1))
        assert await first.wait_until("fully_allocated", 300)
        # As a deployment restored beside others: asks for 2 while 1 processor is left.
        adaptive = AdaptiveConfig(enabled=True, min_number_of_allocations=1, max_number_of_allocations=100)
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
