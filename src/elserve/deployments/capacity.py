"""The node's capacity for allocations, and where they fit: Elasticsearch's assignment rules on one node.

Elasticsearch places `number_of_allocations x threads_per_allocation` on a node's
allocated processors (`node.processors`, by default the processors the JVM sees)
and each deployment's estimated memory within the native memory ML may use
(`xpack.ml.max_machine_memory_percent`, 30% of the machine by default). A `low`
priority deployment always runs 1 allocation x 1 thread, takes no processor from
the others (it runs at a lower OS priority), only memory, and a node holds at most
100 of them (`AssignmentPlanner`, `TrainedModelAssignmentRebalancer`,
x-pack/plugin/ml/.../inference/assignment/). What does not fit stays unassigned.
A deployment that failed holds nothing but the workers still exiting (`held_allocations`).

Pure: the planner sees numbers only; `manager.py` keeps the grants of live deployments.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from elserve.deployments.states import DeploymentState, RoutingState

# xpack.ml.max_machine_memory_percent: the share of the machine's memory ML's native processes may use.
MAX_MACHINE_MEMORY_PERCENT = 30
# TrainedModelAssignmentRebalancer: low priority deployments a node may hold.
MAX_LOW_PRIORITY_PER_NODE = 100


def machine_processors() -> int:
    """The processors this process may run on (what the JVM's `availableProcessors` reports)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


@dataclass(frozen=True)
class NodeCapacity:
    """What allocations may use here: `processors` (threads of all normal-priority allocations) and memory."""

    processors: int
    memory_bytes: int

    @classmethod
    def of_machine(cls, processors: int | None = None, memory_bytes: int | None = None) -> NodeCapacity:
        """The machine's processors and 30% of its memory, unless given (`elserve serve --processors / --ml-memory`)."""
        return cls(
            processors=processors if processors is not None else machine_processors(),
            memory_bytes=memory_bytes
            if memory_bytes is not None
            else machine_memory() * MAX_MACHINE_MEMORY_PERCENT // 100,
        )


@dataclass(frozen=True)
class Demand:
    """One deployment as the planner sees it; `allocations` is what it holds (or asks for)."""

    allocations: int
    threads_per_allocation: int
    low_priority: bool
    deployment_memory: int  # paid once when the deployment holds any allocation
    allocation_memory: int  # paid per allocation

    def memory(self, allocations: int) -> int:
        return 0 if allocations == 0 else self.deployment_memory + self.allocation_memory * allocations

    def processors(self, allocations: int) -> int:
        return 0 if self.low_priority else allocations * self.threads_per_allocation


def held_allocations(state: DeploymentState, granted: int, workers: Iterable[RoutingState]) -> int:
    """The allocations a deployment takes from the node, given its grant and its workers' states.

    A live deployment: its grant, or the workers it still runs while they drain away after a
    scale-down. A failed one: no grant, only the workers not yet gone. Elasticsearch stops a failed
    route's process (`TrainedModelAssignmentNodeService.handleLoadFailure`), counts no memory for it in
    the node's load (`RoutingState.consumesMemory`, `NodeLoadDetector`) and deletes a deployment whose
    start fails (`TransportStartTrainedModelDeploymentAction`). Its rebalancer does keep a failed
    route's processors, to start it again on the next rebalance (FAILED -> STARTING); elserve retries
    no failed deployment by itself (a new start of the same id replaces it), so it keeps nothing.
    """
    states = list(workers)
    if state is DeploymentState.FAILED:
        return sum(1 for s in states if s.consumes_resources)
    return max(granted, len(states))


@dataclass(frozen=True)
class Fit:
    """How many allocations of a demand fit beside the others, and why not more."""

    allocations: int
    reason: str | None = None  # Elasticsearch's explanation when fewer than asked fit


def fit(capacity: NodeCapacity, others: list[Demand], demand: Demand, node_name: str = "elserve") -> Fit:
    """The allocations of `demand` that fit beside `others` (which keep what they hold), at most those asked."""
    used_processors = sum(o.processors(o.allocations) for o in others)
    used_memory = sum(o.memory(o.allocations) for o in others)
    free_processors = max(0, capacity.processors - used_processors)
    free_memory = max(0, capacity.memory_bytes - used_memory)

    wanted = min(demand.allocations, 1) if demand.low_priority else demand.allocations
    if demand.low_priority:
        low = sum(1 for o in others if o.low_priority and o.allocations > 0)
        by_processors = wanted if low < MAX_LOW_PRIORITY_PER_NODE else 0
    else:
        by_processors = min(wanted, free_processors // demand.threads_per_allocation)
    room = free_memory - demand.deployment_memory  # what allocations may use once the deployment is paid for
    if room < demand.allocation_memory:
        by_memory = 0
    elif demand.allocation_memory == 0:
        by_memory = wanted
    else:
        by_memory = min(wanted, room // demand.allocation_memory)
    n = min(by_processors, by_memory)
    if n >= demand.allocations:
        return Fit(n)
    if by_memory < by_processors:
        why = (
            f"This node has insufficient available memory. Available memory for ML [{capacity.memory_bytes} "
            f"({_mb(capacity.memory_bytes)})], free memory [{free_memory} ({_mb(free_memory)})], estimated memory "
            f"required for this model [{demand.memory(1)} ({_mb(demand.memory(1))})]."
        )
    else:
        why = (
            f"This node has insufficient allocated processors. Available processors [{capacity.processors}], "
            f"free processors [{free_processors}], processors required for each allocation of this model "
            f"[{demand.threads_per_allocation}]"
        )
    return Fit(n, f"Could not assign (more) allocations on node [{node_name}]. Reason: {why}")


def _mb(n: int) -> str:
    value = round(n / (1 << 20), 1)
    return f"{value:g}mb"


_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}


def parse_memory(text: str) -> int:
    """`--ml-memory`: a byte size as Elasticsearch writes it (`4gb`, `512mb`) or a share of the machine (`40%`)."""
    value = text.strip().lower()
    if value.endswith("%"):
        percent = float(value[:-1])
        if not 0 < percent <= 100:
            raise ValueError(f"a percentage must be in (0, 100], got [{text}]")
        return int(machine_memory() * percent / 100)
    for unit in sorted(_UNITS, key=len, reverse=True):
        if value.endswith(unit):
            number = float(value[: -len(unit)])
            if number < 0:
                raise ValueError(f"a size cannot be negative, got [{text}]")
            return int(number * _UNITS[unit])
    raise ValueError(f"expected a size with a unit (b, kb, mb, gb, tb) or a percentage, got [{text}]")
