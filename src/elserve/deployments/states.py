"""Deployment and routing states, spelled as Elasticsearch prints them."""

from __future__ import annotations

from enum import StrEnum


class DeploymentState(StrEnum):
    """`assignment_state` / `deployment_stats.state` (Elasticsearch `AssignmentState`)."""

    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    FAILED = "failed"


class RoutingState(StrEnum):
    """One node's share of a deployment (Elasticsearch `RoutingState`)."""

    STARTING = "starting"
    STARTED = "started"
    STOPPING = "stopping"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def consumes_resources(self) -> bool:
        """Whether a route in this state takes room on its node: a failed or stopped one runs no
        process (Elasticsearch `RoutingState.consumesMemory`: none of `failed`, `stopped`)."""
        return self not in (RoutingState.FAILED, RoutingState.STOPPED)


class AllocationState(StrEnum):
    """`allocation_status.state`: starting with none, started with some, fully_allocated with all."""

    STARTING = "starting"
    STARTED = "started"
    FULLY_ALLOCATED = "fully_allocated"

    @classmethod
    def of(cls, allocations: int, target: int) -> AllocationState:
        if allocations == 0:
            return cls.STARTING
        return cls.STARTED if allocations < target else cls.FULLY_ALLOCATED
