"""Elasticsearch's deployment settings as Ray Serve options, and Serve's states as Elasticsearch's.

Pure functions over plain data (no Ray import): each rule of the mapping lives here, once.

| Elasticsearch                       | Ray Serve                                                  |
| ----------------------------------- | ---------------------------------------------------------- |
| number_of_allocations               | num_replicas                                               |
| threads_per_allocation              | ray_actor_options.num_cpus, and the replica's torch threads |
| adaptive_allocations.min / max      | autoscaling_config.min_replicas / max_replicas (min 0: scale to zero) |
| queue_capacity                      | max_queued_requests (over it: 429)                          |
| one batch running + one waiting     | max_ongoing_requests per replica                            |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from elserve.deployments.adaptive import DEFAULT_TIMINGS, ScalerTimings
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.states import DeploymentState

# Calls a replica holds at once: enough for one batch running and the next being gathered from
# several callers; beyond it the handle queues them (up to max_queued_requests).
MAX_ONGOING_REQUESTS = 8
# Adaptive scaling aims at this many calls per replica (Serve's `target_ongoing_requests`).
TARGET_ONGOING_REQUESTS = 2.0


def serve_options(config: DeploymentConfig, timings: ScalerTimings = DEFAULT_TIMINGS) -> dict[str, Any]:
    """The `Deployment.options(...)` of one elserve deployment."""
    options: dict[str, Any] = {
        "name": "encoder",
        "ray_actor_options": {"num_cpus": config.threads_per_allocation},
        "max_ongoing_requests": MAX_ONGOING_REQUESTS,
        "max_queued_requests": config.queue_capacity,
        # A replica's load (model install, kernel measurement) may take a while on a slow node.
        "health_check_period_s": 10,
        "graceful_shutdown_timeout_s": 30,
    }
    if config.adaptive_enabled:
        options["autoscaling_config"] = autoscaling_config(config, timings)
    else:
        options["num_replicas"] = config.number_of_allocations
    return options


def autoscaling_config(config: DeploymentConfig, timings: ScalerTimings) -> dict[str, Any]:
    """Elasticsearch's adaptive-allocation timings as Serve's delays: it scales up after one sampling
    interval, down after the scale-up cooldown, and to zero after the scale-to-zero time."""
    upscale_s, downscale_s = timings.interval_s, timings.scale_up_cooldown_s
    adaptive = config.adaptive_allocations
    assert adaptive is not None
    low = adaptive.floor
    high = max(adaptive.ceiling, low, 1)
    return {
        "min_replicas": low,
        "max_replicas": high,
        "initial_replicas": min(max(config.number_of_allocations, low), high),
        "target_ongoing_requests": TARGET_ONGOING_REQUESTS,
        "upscale_delay_s": upscale_s,
        "downscale_delay_s": downscale_s,
        "downscale_to_zero_delay_s": timings.scale_to_zero_after_s,
        # Serve looks at the load over this window (shorter than the delays, or they never pass),
        # reported by the replicas at least twice in it.
        "look_back_period_s": (window := max(2.0, min(30.0, upscale_s, downscale_s))),
        "metrics_interval_s": window / 2,
    }


# Replica states on the way to RUNNING (Serve's ReplicaState names).
_COMING = ("STARTING", "UPDATING", "RECOVERING", "PENDING_MIGRATION")


@dataclass(frozen=True)
class ServeStatus:
    """What Serve says of one application: its status, its replicas by state, and a message."""

    application: str  # ApplicationStatus: NOT_STARTED, DEPLOYING, RUNNING, DEPLOY_FAILED, DELETING, UNHEALTHY
    replicas: dict[str, int]  # ReplicaState name -> count (STARTING, RUNNING, STOPPING, ...)
    message: str = ""

    @property
    def running(self) -> int:
        return self.replicas.get("RUNNING", 0)

    @property
    def starting(self) -> int:
        return sum(n for state, n in self.replicas.items() if state in _COMING)


def deployment_state(status: ServeStatus | None, current: DeploymentState, target: int) -> DeploymentState:
    """Serve's application status as Elasticsearch's `assignment_state`.

    As the local backend: `started` once a replica runs (or none is asked for: scaled to zero),
    `starting` before; a failed deploy with nothing running is `failed`; deleting is `stopping`.
    Once started, a deployment stays started while Serve replaces or rescales replicas.
    """
    if current in (DeploymentState.STOPPING, DeploymentState.FAILED):
        return current
    if status is None:
        return current
    if status.application == "DELETING":
        return DeploymentState.STOPPING
    if status.application == "DEPLOY_FAILED" and status.running == 0:
        return DeploymentState.FAILED
    if current is DeploymentState.STARTED:
        return current
    if status.running > 0 or (target == 0 and status.application == "RUNNING"):
        return DeploymentState.STARTED
    return DeploymentState.STARTING


# The last line of a Python traceback: `package.module.SomeError: what happened`.
_RAISED = re.compile(r"^(?:[A-Za-z_][\w]*\.)*([A-Za-z_]\w*): (.+)$")
_ATTEMPTS = re.compile(r"failed to start (\d+) times in a row")


def failure_reason(message: str) -> str:
    """A failed deployment's reason from Serve's message: when it carries the replicas' tracebacks, what the
    last one raised (e.g. `ModelDownloadError: ...checksums do not match...`) after how often Serve tried;
    otherwise the message as it is."""
    raised = [m for line in message.splitlines() if (m := _RAISED.match(line))]
    if not raised:
        return message
    error, what = raised[-1].groups()
    attempts = _ATTEMPTS.search(message)
    tried = f" ({attempts.group(1)} attempts)" if attempts else ""
    return f"the replicas failed to start{tried}: {error}: {what}"
