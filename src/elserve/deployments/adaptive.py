"""Adaptive allocations: a deployment's bounds (`AdaptiveAllocations`) and the scaler's timings
(`ScalerTimings`), each default once.

`AdaptiveAllocations` is Elasticsearch's `AdaptiveAllocationsSettings`
(CORE/ml/inference/assignment/AdaptiveAllocationsSettings.java: `validate`, and `toXContent`, where
`enabled` prints `false` when unset and min/max only when set); the same value is what an endpoint
stores, what a deployment holds and what the scaler (scaling.py) and Ray Serve's autoscaling
(rayserve/mapping.py) read. `ScalerTimings` are the cluster settings
`xpack.ml.trained_models.adaptive_allocations.*` (AdaptiveAllocationsScalerService.java).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# AdaptiveAllocationsScalerService.DEFAULT_TIME_INTERVAL_SECONDS: seconds between two stats samples
# (elastic/elasticsearch#128914 makes it xpack.ml.trained_models.adaptive_allocations.trigger_time, min 10s).
TIME_INTERVAL_S = 10.0
# xpack.ml.trained_models.adaptive_allocations.scale_to_zero_time (dynamic; default 24h since
# elastic/elasticsearch#128914, a hard-coded 15m before). Idle means: the summed intervals without a request.
DEFAULT_SCALE_TO_ZERO_AFTER_S = 24 * 3600.0
# xpack.ml.trained_models.adaptive_allocations.scale_up_cooldown_time (dynamic; default 5m).
DEFAULT_SCALE_UP_COOLDOWN_S = 5 * 60.0
# The cap when max_number_of_allocations is not set (AdaptiveAllocationsScaler.MAX_NUMBER_OF_ALLOCATIONS_SAFEGUARD).
MAX_NUMBER_OF_ALLOCATIONS_SAFEGUARD = 32


@dataclass(frozen=True)
class AdaptiveAllocations:
    """`enabled` None: not given (prints `false`); -1 for a bound is an update's "reset" placeholder."""

    enabled: bool | None = None
    min_number_of_allocations: int | None = None
    max_number_of_allocations: int | None = None

    @property
    def is_enabled(self) -> bool:
        return self.enabled is True

    @property
    def floor(self) -> int:
        return self.min_number_of_allocations or 0

    @property
    def ceiling(self) -> int:
        return self.max_number_of_allocations or MAX_NUMBER_OF_ALLOCATIONS_SAFEGUARD

    @property
    def scales_to_zero(self) -> bool:
        """Enabled with no minimum or a minimum of 0: idle time may take it to 0 and a request wakes it."""
        return self.is_enabled and not self.min_number_of_allocations

    def validation_errors(self) -> list[str]:
        """`AdaptiveAllocationsSettings.validate()` (-1 is the "reset" placeholder, not checked)."""
        errors = []
        # None (absent) and -1 (reset) are not checked.
        low = None if self.min_number_of_allocations == -1 else self.min_number_of_allocations
        high = None if self.max_number_of_allocations == -1 else self.max_number_of_allocations
        if low is not None and low < 0:
            errors.append("[min_number_of_allocations] must be a non-negative integer or null")
        if high is not None and high < 1:
            errors.append("[max_number_of_allocations] must be a positive integer or null")
        if low is not None and high is not None and low > high:
            errors.append("[min_number_of_allocations] must not be larger than [max_number_of_allocations]")
        return errors

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"enabled": self.enabled is True}
        if self.min_number_of_allocations is not None:
            body["min_number_of_allocations"] = self.min_number_of_allocations
        if self.max_number_of_allocations is not None:
            body["max_number_of_allocations"] = self.max_number_of_allocations
        return body

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> AdaptiveAllocations:
        """Stored settings, trusted."""
        return cls(value.get("enabled"), value.get("min_number_of_allocations"), value.get("max_number_of_allocations"))


@dataclass(frozen=True)
class ScalerTimings:
    """How often the scaler samples, how long a deployment idles before it goes to zero, and how long after
    scaling up it may not scale down. Ray Serve's autoscaling reads the same three (rayserve/mapping.py)."""

    interval_s: float = TIME_INTERVAL_S
    scale_to_zero_after_s: float = DEFAULT_SCALE_TO_ZERO_AFTER_S
    scale_up_cooldown_s: float = DEFAULT_SCALE_UP_COOLDOWN_S


DEFAULT_TIMINGS = ScalerTimings()
