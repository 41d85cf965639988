"""The deployment interface the operations and the API use, whatever runs the allocations.

Two backends implement it: `local` (manager.py, deployment.py: worker processes on this machine)
and `ray` (rayserve/: Ray Serve replicas on a Ray cluster). Nothing above `deployments/` needs
to know which one runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from elserve.deployments.config import DeploymentConfig
from elserve.deployments.deployment import InferenceResult
from elserve.deployments.memory import DeploymentMemory
from elserve.deployments.states import DeploymentState, RoutingState
from elserve.deployments.stats import DeploymentCounters
from elserve.models.downloads import ModelDownloads
from elserve.runtime import Tokenizer


@dataclass(frozen=True)
class NodeShare:
    """One node's part of a deployment: `deployment_stats.nodes[]` (Ray: one per Ray node holding replicas)."""

    node_id: str
    name: str
    address: str
    allocations: int
    routing_state: RoutingState
    counters: DeploymentCounters


class AllocationView(Protocol):
    state: RoutingState


class ServedDeployment(Protocol):
    config: DeploymentConfig
    state: DeploymentState
    reason: str | None
    failure_status: int
    placement_reason: str | None
    start_time_ms: int
    counters: DeploymentCounters
    tokenizer: Tokenizer | None

    @property
    def deployment_id(self) -> str: ...

    @property
    def model_id(self) -> str: ...

    @property
    def allocations(self) -> Sequence[AllocationView]: ...

    @property
    def started_allocations(self) -> int: ...

    @property
    def queued_texts(self) -> int: ...

    @property
    def pending_requests(self) -> int: ...

    def node_shares(self) -> list[NodeShare] | None:
        """Per node, for a deployment spread over several; None: all of it on this server's node."""
        ...

    def memory_per(self) -> tuple[int, int]:
        """(per-deployment, per-allocation) bytes: measured where it can be, else estimated from the
        model's files (deployments/memory.py)."""
        ...

    def memory(self) -> DeploymentMemory | None:
        """Measured from this server's worker processes; None where there are none (yet, or on Ray)."""
        ...

    async def wait_started(self, timeout: float | None) -> bool: ...

    async def wait_until(self, condition: str, timeout: float | None) -> bool: ...

    async def reconfigure(self, config: DeploymentConfig) -> None: ...

    async def infer(
        self, texts: list[str], timeout: float | None, priority: str | None = None
    ) -> list[InferenceResult]: ...


class DeploymentBackend(Protocol):
    # Where the backend's models come from (its catalogue resolves model ids: built-ins, then uploads).
    downloads: ModelDownloads

    def get(self, deployment_id: str) -> ServedDeployment | None: ...

    def all(self) -> list[ServedDeployment]: ...

    def of_model(self, model_id: str) -> list[ServedDeployment]: ...

    def start(self, config: DeploymentConfig) -> ServedDeployment: ...

    def add_failed(self, config: DeploymentConfig, reason: str) -> ServedDeployment: ...

    def forget(self, deployment_id: str) -> None: ...

    async def stop(self, deployment_id: str) -> None: ...

    async def stop_all(self) -> None: ...

    def check_start(self, config: DeploymentConfig) -> None: ...

    def check_update(self, deployment: ServedDeployment, allocations: int) -> None: ...

    def native_memory(self) -> tuple[int, int]: ...
