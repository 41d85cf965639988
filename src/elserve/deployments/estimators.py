"""Elasticsearch's one-dimensional Kalman filter, as an immutable value.

Port of `KalmanFilter1d.java` (elastic/elasticsearch,
`x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/adaptiveallocations/`):
it estimates the mean and standard error of a series of measurements, each
given with its own variance. The process noise is not modelled; it is fixed
as `measurement variance / smoothing_factor`, so roughly the last
`smoothing_factor` measurements count. When the dynamics change (declared by
the caller, or detected as a measurement more than 10 standard deviations
off), and on the step after, the process variance becomes the measurement
squared so the estimate can jump.

The arithmetic follows Java's doubles, including the "no value yet" sentinel
(`Double.MAX_VALUE`) and division by zero giving an infinity or NaN instead of
raising: a NaN estimate makes `has_value` false, as in Elasticsearch.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace

# Java's `Double.MAX_VALUE`, which `KalmanFilter1d` uses for "no value yet".
_NO_VALUE = sys.float_info.max
# A squared deviation above this many combined variances is a change in dynamics (10 standard deviations).
_DYNAMICS_CHANGE_THRESHOLD = 100.0


def java_divide(numerator: float, denominator: float) -> float:
    """`numerator / denominator` with Java's double semantics (x/0 is ±inf, 0/0 is NaN)."""
    if denominator != 0.0:
        return numerator / denominator
    if numerator == 0.0 or math.isnan(numerator):
        return math.nan
    negative = (numerator < 0) != (math.copysign(1.0, denominator) < 0)
    return -math.inf if negative else math.inf


@dataclass(frozen=True)
class KalmanFilter1d:
    """The filter's state; `add` returns the next one."""

    smoothing_factor: float
    autodetect_dynamics_change: bool
    value: float = _NO_VALUE
    variance: float = _NO_VALUE
    dynamics_changed_last_time: bool = False

    @property
    def has_value(self) -> bool:
        # Written as Elasticsearch does, so NaN (a failed update) also reads as "no value".
        return self.value < _NO_VALUE and self.variance < _NO_VALUE

    @property
    def estimate(self) -> float:
        return self.value

    @property
    def error(self) -> float:
        """The standard error of the estimate."""
        return math.sqrt(self.variance) if self.variance >= 0 else math.nan

    @property
    def lower(self) -> float:
        """Lower bound of the one-standard-deviation interval."""
        return self.value - self.error

    @property
    def upper(self) -> float:
        """Upper bound of the one-standard-deviation interval."""
        return self.value + self.error

    def add(self, value: float, variance: float, dynamics_changed_external: bool = False) -> KalmanFilter1d:
        """The filter after one measurement `value` with variance `variance`."""
        if not self.has_value:
            return replace(self, value=value, variance=variance, dynamics_changed_last_time=True)
        process_variance = variance / self.smoothing_factor
        dynamics_changed = dynamics_changed_external or self._detect_dynamics_change(value, variance)
        if dynamics_changed or self.dynamics_changed_last_time:
            process_variance = value * value
        predicted_variance = self.variance + process_variance
        gain = java_divide(predicted_variance, predicted_variance + variance)
        return replace(
            self,
            value=self.value + gain * (value - self.value),
            variance=(1 - gain) * predicted_variance,
            dynamics_changed_last_time=dynamics_changed,
        )

    def _detect_dynamics_change(self, value: float, variance: float) -> bool:
        if not self.autodetect_dynamics_change:
            return False
        deviation = value - self.value
        return java_divide(deviation * deviation, variance + self.variance) > _DYNAMICS_CHANGE_THRESHOLD
