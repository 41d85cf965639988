"""Elasticsearch's messages of a deployment that cannot take, or could not answer, a request: each once.

Sources (x-pack/plugin/ml): `TrainedModelAssignmentNodeService` and `TransportInferTrainedModelDeploymentAction`
(a deployment that is not started: 409), `PriorityProcessWorkerExecutorService` (its queue is full: 429),
`DeploymentManager` (the native process crashed).
"""

from __future__ import annotations

from elserve.errors import RejectedExecutionException, StatusException


def queue_full() -> RejectedExecutionException:
    """The deployment's queue holds `queue_capacity` requests already (429)."""
    return RejectedExecutionException("inference process queue is full. Unable to execute command")


def not_serving(deployment_id: str, state: object) -> StatusException:
    """A stopping or failed deployment (409); `state` is printed as Elasticsearch's lowercase name."""
    return StatusException(f"Trained model [{deployment_id}] is [{state}]", 409)


def not_allocated(deployment_id: str) -> StatusException:
    """A deployment with no started allocation yet (409), named by the id the request used."""
    return StatusException(f"Trained model deployment [{deployment_id}] is not allocated to any nodes", 409)


def process_crashed(reason: object) -> StatusException:
    """A worker (a replica on Ray) died with the batch, which had been retried once already (500)."""
    return StatusException(f"inference process crashed due to reason [{reason}]", 500)


def inference_failed(error: object) -> StatusException:
    """The encoder raised on a batch (500)."""
    return StatusException(f"inference failed: {error}", 500)
