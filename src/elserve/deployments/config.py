"""What a deployment is asked to be: plain data, validated at the API edge."""

from __future__ import annotations

from dataclasses import dataclass, replace

from elserve.deployments.adaptive import AdaptiveAllocations
from elserve.deployments.priority import Priority
from elserve.runtime.kernel_sizes import BATCH_TOKENS

# Elasticsearch's `StartTrainedModelDeploymentAction` defaults.
DEFAULT_QUEUE_CAPACITY = 10_000
DEFAULT_PRIORITY = Priority.NORMAL
# Batches are cut by tokens, not texts: the cost of a batch is its tokens (batcher.py).
DEFAULT_MAX_BATCH_TOKENS = BATCH_TOKENS
DEFAULT_MAX_BATCH_SIZE = 256


@dataclass(frozen=True)
class DeploymentConfig:
    deployment_id: str
    model_id: str
    number_of_allocations: int
    threads_per_allocation: int = 1
    queue_capacity: int = DEFAULT_QUEUE_CAPACITY
    priority: Priority = DEFAULT_PRIORITY
    # Held with `enabled` as a plain bool (operations/deployments.adaptive_config).
    adaptive_allocations: AdaptiveAllocations | None = None
    # Which inference endpoint created it (None: started through the ML API).
    owner_endpoint: str | None = None
    # `cache_size` as given at start (`ByteSizeValue.getStringRep()`); None: the model's size.
    cache_size: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "priority", Priority(self.priority))  # a stored record holds the plain name

    @property
    def adaptive_enabled(self) -> bool:
        return self.adaptive_allocations is not None and self.adaptive_allocations.is_enabled

    @property
    def low_priority(self) -> bool:
        return self.priority is Priority.LOW

    def with_allocations(self, n: int) -> DeploymentConfig:
        return replace(self, number_of_allocations=n)

    def to_persisted(self) -> dict:
        d = self.__dict__.copy()
        d["priority"] = str(self.priority)
        if self.adaptive_allocations is not None:
            d["adaptive_allocations"] = self.adaptive_allocations.__dict__.copy()
        return d

    @classmethod
    def from_persisted(cls, d: dict) -> DeploymentConfig:
        d = dict(d)
        if d.get("adaptive_allocations") is not None:
            d["adaptive_allocations"] = AdaptiveAllocations(**d["adaptive_allocations"])
        return cls(**d)
