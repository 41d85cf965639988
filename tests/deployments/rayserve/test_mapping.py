"""The Elasticsearch -> Ray Serve mapping (deployments/rayserve/mapping.py): pure, no Ray needed."""

from __future__ import annotations

import pytest

from elserve.deployments.adaptive import AdaptiveAllocations, ScalerTimings
from elserve.deployments.config import DeploymentConfig
from elserve.deployments.rayserve.mapping import (
    MAX_ONGOING_REQUESTS,
    ServeStatus,
    deployment_state,
    failure_reason,
    serve_options,
)
from elserve.deployments.states import DeploymentState as S


def _config(**kw) -> DeploymentConfig:
    return DeploymentConfig(deployment_id="d", model_id=".elser_model_2", **{"number_of_allocations": 2, **kw})


def test_allocations_and_threads_become_replicas_and_cpus() -> None:
    options = serve_options(_config(threads_per_allocation=4, queue_capacity=7))
    assert options["num_replicas"] == 2
    assert options["ray_actor_options"] == {"num_cpus": 4}
    assert options["max_queued_requests"] == 7
    assert options["max_ongoing_requests"] == MAX_ONGOING_REQUESTS
    assert "autoscaling_config" not in options


@pytest.mark.parametrize(
    ("adaptive", "allocations", "expected"),
    [
        (AdaptiveAllocations(True, 0, 4), 1, (0, 4, 1)),  # min 0: scale to zero allowed
        (AdaptiveAllocations(True, 2, 3), 1, (2, 3, 2)),  # the initial count within the bounds
        (AdaptiveAllocations(True, None, None), 5, (0, 32, 5)),  # Elasticsearch's defaults: 0 .. 32
    ],
)
def test_adaptive_allocations_become_autoscaling(adaptive, allocations, expected) -> None:
    # Serve scales up after one sampling interval, down after the cooldown, to zero after the idle time.
    timings = ScalerTimings(interval_s=10, scale_up_cooldown_s=300, scale_to_zero_after_s=900)
    options = serve_options(_config(adaptive_allocations=adaptive, number_of_allocations=allocations), timings)
    auto = options["autoscaling_config"]
    assert "num_replicas" not in options
    assert (auto["min_replicas"], auto["max_replicas"], auto["initial_replicas"]) == expected
    assert (auto["upscale_delay_s"], auto["downscale_delay_s"], auto["downscale_to_zero_delay_s"]) == (10, 300, 900)


def test_disabled_adaptive_is_a_fixed_count() -> None:
    options = serve_options(_config(adaptive_allocations=AdaptiveAllocations(False, 0, 4)))
    assert options["num_replicas"] == 2 and "autoscaling_config" not in options


@pytest.mark.parametrize(
    ("application", "replicas", "current", "target", "expected"),
    [
        ("DEPLOYING", {"STARTING": 1}, S.STARTING, 1, S.STARTING),
        ("DEPLOYING", {"RUNNING": 1, "STARTING": 1}, S.STARTING, 2, S.STARTED),  # one runs: started
        ("RUNNING", {"RUNNING": 2}, S.STARTING, 2, S.STARTED),
        ("RUNNING", {}, S.STARTING, 0, S.STARTED),  # scaled to zero from the start
        ("DEPLOYING", {"STARTING": 1}, S.STARTED, 1, S.STARTED),  # a replica replaced: still started
        ("DEPLOY_FAILED", {}, S.STARTING, 1, S.FAILED),
        ("DEPLOY_FAILED", {"RUNNING": 1}, S.STARTED, 2, S.STARTED),  # what runs still serves
        ("DELETING", {"RUNNING": 1}, S.STARTED, 1, S.STOPPING),
        ("RUNNING", {"RUNNING": 1}, S.STOPPING, 1, S.STOPPING),  # stopping is ours to end
    ],
)
def test_serve_states_as_elasticsearch_states(application, replicas, current, target, expected) -> None:
    assert deployment_state(ServeStatus(application, replicas), current, target) is expected


def test_no_status_keeps_the_state() -> None:
    assert deployment_state(None, S.STARTED, 1) is S.STARTED


# Serve's message when a replica's constructor raised (Ray 2.60, shortened): its tracebacks, the last
# one ending in what the replica raised.
_SERVE_FAILED = """Failed to update the deployments ['encoder'].; The deployment failed to start 3 times in a row. \
This may be due to a problem with its constructor or initial health check failing. \
See controller logs for details. Error:
ray::ServeReplica:elserve-d:encoder.initialize_and_get_metadata() (pid=1, ip=127.0.0.1)
  File "/venv/ray/serve/_private/replica.py", line 1928, in initialize
    raise RuntimeError(traceback.format_exc()) from None
RuntimeError: Traceback (most recent call last):
  File "/src/elserve/models/sources/file.py", line 126, in fetch
elserve.models.sources.ModelDownloadError: Model sha256 checksums do not match, expected [a] but got [b]

The above exception was the direct cause of the following exception:

  File "/src/elserve/models/shipping.py", line 72, in install_packed
    raise ModelDownloadError(
elserve.models.sources.ModelDownloadError: the files of model [m] could not be installed in [/c]: Model sha256 \
checksums do not match, expected [a] but got [b]
"""


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (
            _SERVE_FAILED,
            "the replicas failed to start (3 attempts): ModelDownloadError: the files of model [m] could not be "
            "installed in [/c]: Model sha256 checksums do not match, expected [a] but got [b]",
        ),
        ("Deploying app 'x' failed: placement group timed out", "Deploying app 'x' failed: placement group timed out"),
        ("ValueError: bad option", "the replicas failed to start: ValueError: bad option"),
    ],
)
def test_failure_reason_is_what_the_replica_raised(message: str, reason: str) -> None:
    assert failure_reason(message) == reason
