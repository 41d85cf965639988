"""What a deployment is asked to be: plain data, validated at the API edge."""

from __future__ import annotations

from dataclasses import dataclass, replace

# Elasticsearch's `StartTrainedModelDeploymentAction` defaults.
DEFAULT_QUEUE_CAPACITY = 10_000
DEFAULT_PRIORITY = "normal"
# Adaptive allocations never scale past this when no maximum is set.
DEFAULT_MAX_ALLOCATIONS = 32


@dataclass(frozen=True)
class AdaptiveConfig:
    enabled: bool = False
    min_number_of_allocations: int | None = None
    max_number_of_allocations: int | None = None

    @property
    def floor(self) -> int:
        return self.min_number_of_allocations or 0

    @property
    def ceiling(self) -> int:
        return self.max_number_of_allocations or DEFAULT_MAX_ALLOCATIONS


@dataclass(frozen=True)
class DeploymentConfig:
    deployment_id: str
    model_id: str
    number_of_allocations: int
    threads_per_allocation: int = 1
    queue_capacity: int = DEFAULT_QUEUE_CAPACITY
    priority: str = DEFAULT_PRIORITY
    adaptive_allocations: AdaptiveConfig | None = None
    # Which inference endpoint created it (None: started through the ML API).
    owner_endpoint: str | None = None
    # `cache_size` as given at start (`ByteSizeValue.getStringRep()`); None: the model's size.
    cache_size: str | None = None

    @property
    def adaptive_enabled(self) -> bool:
        return self.adaptive_allocations is not None and self.adaptive_allocations.enabled

    def with_allocations(self, n: int) -> DeploymentConfig:
        return replace(self, number_of_allocations=n)

    def to_persisted(self) -> dict:
        d = self.__dict__.copy()
        if self.adaptive_allocations is not None:
            d["adaptive_allocations"] = self.adaptive_allocations.__dict__.copy()
        return d

    @classmethod
    def from_persisted(cls, d: dict) -> DeploymentConfig:
        d = dict(d)
        if d.get("adaptive_allocations") is not None:
            d["adaptive_allocations"] = AdaptiveConfig(**d["adaptive_allocations"])
        return cls(**d)
