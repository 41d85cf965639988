"""Placing allocations on the node's processors and memory: one test per rule."""

from __future__ import annotations

import pytest

from elserve.deployments.capacity import (
    MAX_LOW_PRIORITY_PER_NODE,
    Demand,
    NodeCapacity,
    fit,
    held_allocations,
    machine_memory,
    parse_memory,
)
from elserve.deployments.priority import Priority
from elserve.deployments.states import DeploymentState, RoutingState
from elserve.deployments.validation import start_errors
from elserve.errors import IllegalArgumentException

GB = 1 << 30
MB = 1 << 20


def demand(allocations: int, threads: int = 1, *, low: bool = False, memory: int = 100 * MB) -> Demand:
    return Demand(allocations, threads, low, deployment_memory=0, allocation_memory=memory)


@pytest.mark.parametrize(
    ("processors", "others", "asked", "threads", "placed"),
    [
        (2, [], 1, 1, 1),
        (2, [], 2, 1, 2),
        (2, [], 1000, 1, 2),  # a thousand asked, the node's two processors hold two
        (8, [], 1000, 2, 4),  # allocations x threads within the processors
        (2, [demand(1, 2)], 1, 1, 0),  # the processors are taken
        (4, [demand(1, 2)], 3, 1, 2),
        (4, [demand(3, 1, low=True)], 4, 1, 4),  # low priority takes no processor
        (2, [], 1, 4, 0),  # one allocation needs more threads than the node has
    ],
)
def test_allocations_x_threads_fit_the_processors(processors, others, asked, threads, placed) -> None:
    assert fit(NodeCapacity(processors, 100 * GB), others, demand(asked, threads)).allocations == placed


def test_memory_bounds_allocations() -> None:
    capacity = NodeCapacity(64, 1000 * MB)
    assert fit(capacity, [], demand(100, memory=300 * MB)).allocations == 3
    assert fit(capacity, [demand(2, memory=300 * MB)], demand(100, memory=300 * MB)).allocations == 1
    # The deployment's own part is paid once, before any allocation.
    with_overhead = Demand(100, 1, False, deployment_memory=500 * MB, allocation_memory=100 * MB)
    assert fit(capacity, [], with_overhead).allocations == 5


def test_reason_names_the_short_resource() -> None:
    by_processors = fit(NodeCapacity(2, 100 * GB), [], demand(3))
    assert by_processors.allocations == 2
    assert "insufficient allocated processors. Available processors [2], free processors [2]" in by_processors.reason
    by_memory = fit(NodeCapacity(64, 250 * MB), [], demand(3))
    assert by_memory.allocations == 2
    assert "insufficient available memory" in by_memory.reason
    assert fit(NodeCapacity(2, 100 * GB), [], demand(2)).reason is None


def test_low_priority_is_one_allocation_bounded_by_memory_and_count() -> None:
    capacity = NodeCapacity(1, 100 * GB)
    assert fit(capacity, [demand(1, 1)], demand(5, low=True)).allocations == 1
    assert fit(NodeCapacity(1, 50 * MB), [], demand(1, low=True)).allocations == 0
    full = [demand(1, low=True) for _ in range(MAX_LOW_PRIORITY_PER_NODE)]
    assert fit(capacity, full, demand(1, low=True)).allocations == 0


D, R = DeploymentState, RoutingState


@pytest.mark.parametrize(
    ("state", "granted", "workers", "held"),
    [
        (D.STARTED, 2, [R.STARTED, R.STARTED], 2),
        (D.STARTING, 2, [], 2),  # granted before its workers start: the room is kept for them
        (D.STARTED, 1, [R.STARTED, R.STOPPING], 2),  # scaled down: the drained worker counts until it exits
        (D.STOPPING, 0, [R.STOPPING], 1),
        (D.FAILED, 2, [R.FAILED, R.FAILED], 0),  # failed to start: holds nothing (RoutingState.consumesMemory)
        (D.FAILED, 2, [], 0),  # its workers gone
        (D.FAILED, 2, [R.STARTED, R.FAILED], 1),  # failed later: what still runs counts until it has stopped
        (D.FAILED, 2, [R.STOPPING, R.STOPPED], 1),
    ],
)
def test_a_failed_deployment_holds_only_what_still_runs(state, granted, workers, held) -> None:
    assert held_allocations(state, granted, workers) == held


def test_two_failed_deployments_leave_room_for_a_good_one() -> None:
    """The case of issue 25: after two failed starts of 2 allocations, 2 allocations still fit on 2 processors."""
    failed = held_allocations(D.FAILED, 2, [R.FAILED, R.FAILED])
    others = [demand(failed), demand(failed)]
    assert fit(NodeCapacity(2, 100 * GB), others, demand(2)) == fit(NodeCapacity(2, 100 * GB), [], demand(2))
    assert fit(NodeCapacity(2, 100 * GB), others, demand(2)).allocations == 2


def test_machine_defaults() -> None:
    capacity = NodeCapacity.of_machine()
    assert capacity.processors >= 1
    assert capacity.memory_bytes == machine_memory() * 30 // 100
    assert NodeCapacity.of_machine(3, 5 * GB) == NodeCapacity(3, 5 * GB)


@pytest.mark.parametrize(
    ("text", "value"), [("4gb", 4 * GB), ("512mb", 512 * MB), ("1.5GB", int(1.5 * GB)), ("10b", 10)]
)
def test_parse_memory_sizes(text: str, value: int) -> None:
    assert parse_memory(text) == value


def test_parse_memory_percent_and_errors() -> None:
    assert parse_memory("50%") == machine_memory() // 2
    for bad in ("lots", "0%", "120%", "12"):
        with pytest.raises(ValueError):
            parse_memory(bad)


def test_priority_is_parsed_as_elasticsearch_parses_it() -> None:
    assert Priority.parse("low") is Priority.LOW and str(Priority.LOW) == "low"
    assert Priority.parse("NORMAL") is Priority.NORMAL
    with pytest.raises(IllegalArgumentException) as info:
        Priority.parse("high")
    assert info.value.reason == "No enum constant org.elasticsearch.xpack.core.ml.inference.assignment.Priority.HIGH"


def test_low_priority_allows_only_one_allocation_of_one_thread() -> None:
    assert start_errors(1, 1, None, None, Priority.LOW) == []
    assert start_errors(None, 1, None, None, Priority.LOW) == []
    assert start_errors(2, 2, None, None, Priority.LOW) == [
        "[number_of_allocations] must be 1 when [priority] is low",
        "[threads_per_allocation] must be 1 when [priority] is low",
    ]
