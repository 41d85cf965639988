"""Adaptive allocations: Elasticsearch's scaler as pure functions (state in, state out).

Ported from elastic/elasticsearch,
`x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/adaptiveallocations/`:

* `AdaptiveAllocationsScaler.java` -> `process` (feed one interval's stats to
  the Kalman filters) and `scale` (thresholds, bounds, scale to zero);
* `AdaptiveAllocationsScalerService.java` -> `decide` (turn cumulative stats
  into per-interval deltas, the scale-up cooldown, "only when started") and
  `on_request_at_zero` (`maybeStartAllocation`: a request at zero allocations
  asks for one at once);
* `KalmanFilter1d.java` -> `estimators.py`.

No clock and no I/O: the caller passes each sample's time (Elasticsearch
samples every `adaptive.TIME_INTERVAL_S`), applies the returned number of allocations,
and keeps the returned state. Shape after Ray Serve's
`replica_queue_length_autoscaling_policy`.

Two behaviours of Elasticsearch kept on purpose, although surprising:
* the pending count is diffed like the counters (`Stats.sub`), so a queue
  that stays long adds nothing after the interval it grew in;
* the cooldown only holds back scaling *down*; scaling up is never delayed.

Assumption (unconfirmed): at zero allocations a deployment has no routes,
hence no node stats, and Elasticsearch's scaler does not run for it until a
request brings it back (`decide` then only records the sample time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from elserve.deployments.adaptive import (
    DEFAULT_SCALE_TO_ZERO_AFTER_S,
    DEFAULT_SCALE_UP_COOLDOWN_S,
    MAX_NUMBER_OF_ALLOCATIONS_SAFEGUARD,
    AdaptiveAllocations,
)
from elserve.deployments.estimators import KalmanFilter1d, java_divide

# AdaptiveAllocationsScaler: scale up while the load's lower bound per allocation exceeds this...
SCALE_UP_THRESHOLD = 0.9
# ...and down while the load's upper bound spread over one allocation fewer stays below this.
SCALE_DOWN_THRESHOLD = 0.85
# Both filters weigh roughly the last 100 samples (about 15 minutes at 10 s).
SMOOTHING_FACTOR = 100.0

STARTED = "started"  # AssignmentState.STARTED; only started deployments are rescaled
_UNBOUNDED = 2**31 - 1  # Java's Integer.MAX_VALUE


@dataclass(frozen=True)
class StatsSample:
    """One look at a deployment's stats (one node here), the counters cumulative as the stats API reports them."""

    time_s: float
    number_of_allocations: int  # the deployment's (target) number_of_allocations
    inference_count: int = 0
    pending_count: int = 0
    error_count: int = 0
    timeout_count: int = 0
    rejected_execution_count: int = 0
    average_inference_time_ms: float | None = None  # over all inferences so far
    assignment_state: str = STARTED
    routing_starting: bool = False  # an allocation is still starting (counts as a recent scale-up)
    route_start_time_s: float | None = None  # when the node's route started (`start_time`)


@dataclass(frozen=True)
class RecentStats:
    """Elasticsearch's `AdaptiveAllocationsScalerService.Stats`: counts over one interval, or cumulative ones."""

    success_count: int
    pending_count: int
    failed_count: int
    inference_time_s: float  # average per successful inference; NaN when there was none

    @property
    def request_count(self) -> int:
        return self.success_count + self.pending_count + self.failed_count

    @property
    def total_inference_time_s(self) -> float:
        return self.success_count * self.inference_time_s

    @classmethod
    def of(cls, sample: StatsSample) -> RecentStats:
        return cls(
            success_count=sample.inference_count,
            pending_count=sample.pending_count,
            failed_count=sample.error_count + sample.timeout_count + sample.rejected_execution_count,
            inference_time_s=(sample.average_inference_time_ms or 0.0) / 1000.0,
        )

    def sub(self, earlier: RecentStats) -> RecentStats:
        """What happened since `earlier`; counts never below 0 (a restarted node resets its counters)."""
        success = max(0, self.success_count - earlier.success_count)
        return RecentStats(
            success_count=success,
            pending_count=max(0, self.pending_count - earlier.pending_count),
            failed_count=max(0, self.failed_count - earlier.failed_count),
            inference_time_s=(
                (self.total_inference_time_s - earlier.total_inference_time_s) / success if success > 0 else math.nan
            ),
        )


def _request_rate_filter() -> KalmanFilter1d:
    # The request rate changes with user behaviour, so let the filter notice jumps by itself.
    return KalmanFilter1d(SMOOTHING_FACTOR, autodetect_dynamics_change=True)


def _inference_time_filter() -> KalmanFilter1d:
    # The inference time changes when the allocations do, which the scaler tells it explicitly.
    return KalmanFilter1d(SMOOTHING_FACTOR, autodetect_dynamics_change=False)


@dataclass(frozen=True)
class ScalerState:
    """Everything the scaler remembers about one deployment between samples. `ScalerState()` is a fresh start."""

    request_rate: KalmanFilter1d = field(default_factory=_request_rate_filter)  # requests per second
    inference_time: KalmanFilter1d = field(default_factory=_inference_time_filter)  # seconds per request
    time_without_requests_s: float = 0.0
    # The last scaling changed the allocations, so the next inference time may jump.
    dynamics_changed: bool = False
    needed_number_of_allocations: int | None = None  # before min/max, for metrics
    last_sample_time_s: float | None = None
    last_stats: RecentStats | None = None  # the node's cumulative stats at the last sample
    last_scale_up_time_s: float | None = None

    @property
    def load_lower(self) -> float:
        """Lower bound of the load (busy allocations): rate x time, each at estimate - 1 std error."""
        rate = max(0.0, self.request_rate.lower)
        time = max(0.0, self.inference_time.lower if self.inference_time.has_value else 1.0)
        return rate * time

    @property
    def load_upper(self) -> float:
        """Upper bound of the load: rate x time, each at estimate + 1 std error."""
        time = self.inference_time.upper if self.inference_time.has_value else 1.0
        return self.request_rate.upper * time


def process(state: ScalerState, stats: RecentStats, interval_s: float) -> ScalerState:
    """Feed one interval's stats to the estimators (`AdaptiveAllocationsScaler.process`)."""
    requests = stats.request_count
    time_without_requests_s = 0.0 if requests > 0 else state.time_without_requests_s + interval_s

    # Requests are taken as Poisson: the count's variance is its mean (at least 1, smaller counts can't
    # be measured), estimated rather than measured to avoid a biased estimate.
    rate = requests / interval_s
    rate_estimate = state.request_rate.estimate if state.request_rate.has_value else rate
    rate_variance = max(1.0, rate_estimate * interval_s) / (interval_s * interval_s)
    request_rate = state.request_rate.add(rate, rate_variance, False)

    inference_time = state.inference_time
    if requests > 0 and not math.isnan(stats.inference_time_s):
        # Unknown distribution: take the standard deviation equal to the mean, shrinking with the count.
        measured = stats.inference_time_s
        time_estimate = inference_time.estimate if inference_time.has_value else measured
        time_variance = time_estimate * time_estimate / requests
        inference_time = inference_time.add(measured, time_variance, state.dynamics_changed)

    return replace(
        state,
        request_rate=request_rate,
        inference_time=inference_time,
        time_without_requests_s=time_without_requests_s,
        dynamics_changed=False,
    )


def _scale_up(load: float, allocations: int) -> int:
    """Smallest n >= allocations with load / n <= SCALE_UP_THRESHOLD (Elasticsearch counts up one by one)."""
    if math.isnan(load):
        return allocations
    if math.isinf(load):
        # Elasticsearch would count up for ever; an infinite load asks for as many as the bounds allow.
        return allocations if load < 0 else _UNBOUNDED
    n = allocations
    if n == 0 and java_divide(load, 0) > SCALE_UP_THRESHOLD:
        n = 1
    # Jump to just below the answer (the ratio falls as n grows), then finish with the exact test.
    n = max(n, math.floor(load / SCALE_UP_THRESHOLD) - 2)
    while n > 0 and load / n > SCALE_UP_THRESHOLD:
        n += 1
    return n


def _scale_down(load: float, allocations: int) -> int:
    """Step down while load / (n - 1) < SCALE_DOWN_THRESHOLD, never below 1."""
    n = allocations
    if n > 1 and math.isfinite(load):
        # Every n above this still passes the test, so skip straight to it.
        n = min(n, max(1, math.ceil(load / SCALE_DOWN_THRESHOLD) + 2))
    while n > 1 and load / (n - 1) < SCALE_DOWN_THRESHOLD:
        n -= 1
    return n


def scale(
    bounds: AdaptiveAllocations,
    state: ScalerState,
    number_of_allocations: int,
    *,
    scale_to_zero_after_s: float = DEFAULT_SCALE_TO_ZERO_AFTER_S,
) -> tuple[int | None, ScalerState]:
    """The allocations the estimates call for, or None to keep `number_of_allocations`.

    `AdaptiveAllocationsScaler.scale`: count up while the load's lower bound per
    allocation is above 0.9, then down while its upper bound over one fewer is
    below 0.85; clamp to [min, max] (32 without a max); 0 after the idle time
    when the minimum is unset or 0.
    """
    if not state.request_rate.has_value:
        return None, state

    n = _scale_down(state.load_upper, _scale_up(state.load_lower, number_of_allocations))
    needed = n

    minimum, maximum = bounds.min_number_of_allocations, bounds.max_number_of_allocations
    if maximum is None:
        n = min(n, MAX_NUMBER_OF_ALLOCATIONS_SAFEGUARD)
    if minimum is not None:
        n = max(n, minimum)
    if maximum is not None:
        n = min(n, maximum)
    if not minimum and state.time_without_requests_s > scale_to_zero_after_s:
        n = needed = 0

    state = replace(state, needed_number_of_allocations=needed)
    if n == number_of_allocations:
        return None, state
    return n, replace(state, dynamics_changed=True)


def decide(
    bounds: AdaptiveAllocations,
    sample: StatsSample,
    state: ScalerState,
    *,
    scale_to_zero_after_s: float = DEFAULT_SCALE_TO_ZERO_AFTER_S,
    scale_up_cooldown_s: float = DEFAULT_SCALE_UP_COOLDOWN_S,
) -> tuple[int | None, ScalerState]:
    """One tick of `AdaptiveAllocationsScalerService`: allocations to set (None: leave them) and the next state.

    The first sample only sets the baseline. Scaling down is held back within
    `scale_up_cooldown_s` of a scale-up (by this scaler or a request at zero),
    while an allocation is starting, and within the cooldown of the route's
    start; nothing is changed unless the deployment is `started`.
    """
    if not bounds.is_enabled:
        # Elasticsearch drops the scaler and the remembered stats (enabling again starts afresh),
        # but not the time of the last scale-up.
        return None, ScalerState(last_scale_up_time_s=state.last_scale_up_time_s)
    if state.last_sample_time_s is not None and sample.time_s <= state.last_sample_time_s:
        raise ValueError(f"sample time [{sample.time_s}] is not after the previous one [{state.last_sample_time_s}]")

    previous_time_s = state.last_sample_time_s
    state = replace(state, last_sample_time_s=sample.time_s)
    if sample.number_of_allocations == 0:
        return None, state  # no route, no node stats: nothing to process (see the module docstring)

    current = RecentStats.of(sample)
    previous, state = state.last_stats, replace(state, last_stats=current)
    if previous_time_s is None or previous is None:
        return None, state

    state = process(state, current.sub(previous), sample.time_s - previous_time_s)
    wanted, state = scale(bounds, state, sample.number_of_allocations, scale_to_zero_after_s=scale_to_zero_after_s)
    if wanted is None:
        return None, state

    if wanted < sample.number_of_allocations and (
        _within(state.last_scale_up_time_s, scale_up_cooldown_s, sample.time_s)
        or sample.routing_starting
        or _within(sample.route_start_time_s, scale_up_cooldown_s, sample.time_s)
    ):
        return None, state
    if sample.assignment_state != STARTED:
        return None, state
    if wanted > sample.number_of_allocations:
        state = replace(state, last_scale_up_time_s=sample.time_s)
    return wanted, state


def on_request_at_zero(
    bounds: AdaptiveAllocations,
    state: ScalerState,
    *,
    now_s: float,
    scale_from_zero_in_flight: bool = False,
) -> tuple[int | None, ScalerState]:
    """A request found the deployment without allocations (`maybeStartAllocation`).

    Returns 1 when the caller should ask for one allocation now, None otherwise
    (not `bounds.scales_to_zero`, or a scale from zero already under way). When
    `bounds.scales_to_zero` the request should wait for that allocation.
    """
    if not bounds.scales_to_zero:
        return None, state
    state = replace(state, time_without_requests_s=0.0)
    if scale_from_zero_in_flight:
        return None, state
    return 1, replace(state, last_scale_up_time_s=now_s)


def _within(since_s: float | None, period_s: float, now_s: float) -> bool:
    return since_s is not None and now_s < since_s + period_s
