"""The rules of a deployment request, as Elasticsearch's `StartTrainedModelDeploymentAction.Request.validate`
and `UpdateTrainedModelDeploymentAction.Request.validate` state them (x-pack/plugin/core/.../ml/action/).

One place for them: the ML `_start` / `_update` APIs and inference endpoints (table T5) both call these.
"""

from __future__ import annotations

from typing import Protocol

from elserve.deployments.priority import Priority

MAX_THREADS_PER_ALLOCATION = 32
MAX_QUEUE_CAPACITY = 100_000


class AdaptiveLike(Protocol):
    @property
    def is_enabled(self) -> bool: ...

    def validation_errors(self) -> list[str]: ...


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def start_errors(
    number_of_allocations: int | None,
    threads_per_allocation: int,
    adaptive: AdaptiveLike | None,
    queue_capacity: int | None = None,
    priority: Priority | None = None,
) -> list[str]:
    """Messages `_start` would refuse with, in Elasticsearch's order."""
    errors = _allocations_errors(number_of_allocations, adaptive)
    if threads_per_allocation < 1:
        errors.append("[threads_per_allocation] must be a positive integer")
    if adaptive is not None:
        errors.extend(adaptive.validation_errors())
    if threads_per_allocation > MAX_THREADS_PER_ALLOCATION or not _is_power_of_two(threads_per_allocation):
        errors.append(
            f"[threads_per_allocation] must be a power of 2 less than or equal to {MAX_THREADS_PER_ALLOCATION}"
        )
    if queue_capacity is not None:
        if queue_capacity < 1:
            errors.append("[queue_capacity] must be a positive integer")
        if queue_capacity > MAX_QUEUE_CAPACITY:
            errors.append(f"[queue_capacity] must be less than {MAX_QUEUE_CAPACITY}")
    if priority == Priority.LOW:
        if number_of_allocations is not None and number_of_allocations > 1:
            errors.append("[number_of_allocations] must be 1 when [priority] is low")
        if threads_per_allocation > 1:
            errors.append("[threads_per_allocation] must be 1 when [priority] is low")
    return errors


def _allocations_errors(number_of_allocations: int | None, adaptive: AdaptiveLike | None) -> list[str]:
    """The rule `_start` and `_update` share on `number_of_allocations`."""
    errors = []
    if number_of_allocations is not None:
        if number_of_allocations < 1:
            errors.append("[number_of_allocations] must be a positive integer")
        if adaptive is not None and adaptive.is_enabled:
            errors.append("[number_of_allocations] cannot be set if adaptive allocations is enabled")
    return errors


def update_errors(number_of_allocations: int | None, adaptive: AdaptiveLike | None) -> list[str]:
    """Messages `_update` would refuse with."""
    errors = _allocations_errors(number_of_allocations, adaptive)
    if adaptive is not None:
        errors.extend(adaptive.validation_errors())
    return errors
