"""Adaptive allocations: Elasticsearch's scaler, decision by decision.

The `test_es_*` cases are Elasticsearch's own (`AdaptiveAllocationsScalerTests.java`,
`KalmanFilter1dTests.java`, `AdaptiveAllocationsScalerServiceTests.java`) with their
expected decisions; the others drive `decide` with a hand-held clock.
"""

from __future__ import annotations

import math
import random

import pytest

from elserve.deployments.adaptive import DEFAULT_SCALE_TO_ZERO_AFTER_S, DEFAULT_SCALE_UP_COOLDOWN_S, AdaptiveAllocations
from elserve.deployments.estimators import KalmanFilter1d
from elserve.deployments.scaling import (
    SCALE_UP_THRESHOLD,
    RecentStats,
    ScalerState,
    StatsSample,
    _scale_down,
    _scale_up,
    decide,
    on_request_at_zero,
    process,
    scale,
)

UNBOUNDED = AdaptiveAllocations(enabled=True)
NAN = math.nan


class Deployment:
    """A deployment fed to `decide` every `interval_s` of a fake clock; it applies every decision."""

    def __init__(
        self,
        bounds: AdaptiveAllocations = UNBOUNDED,
        *,
        allocations: int = 1,
        interval_s: float = 10.0,
        scale_to_zero_after_s: float = DEFAULT_SCALE_TO_ZERO_AFTER_S,
        cooldown_s: float = DEFAULT_SCALE_UP_COOLDOWN_S,
    ) -> None:
        self.bounds = bounds
        self.allocations = allocations
        self.interval_s = interval_s
        self.scale_to_zero_after_s = scale_to_zero_after_s
        self.cooldown_s = cooldown_s
        self.now = 0.0
        self.state = ScalerState()
        self.count = 0
        self.total_time_s = 0.0
        self.pending = 0
        self.errors = 0
        assert self._decide() is None  # the first sample is the baseline

    def tick(self, requests: int = 0, seconds_each: float = 0.0, *, pending: int = 0, errors: int = 0, **sample):
        """One interval with `requests` finished inferences; `pending` / `errors` are added to those counters."""
        self.now += self.interval_s
        self.count += requests
        self.total_time_s += requests * seconds_each
        self.pending += pending
        self.errors += errors
        return self._decide(**sample)

    def run(self, rows: list[tuple[int, float]]) -> list[int | None]:
        return [self.tick(requests, seconds_each) for requests, seconds_each in rows]

    def _decide(self, **sample) -> int | None:
        stats = StatsSample(
            time_s=self.now,
            number_of_allocations=self.allocations,
            inference_count=self.count,
            pending_count=self.pending,
            error_count=self.errors,
            average_inference_time_ms=self.total_time_s * 1000 / self.count if self.count else None,
            **sample,
        )
        decision, self.state = decide(
            self.bounds,
            stats,
            self.state,
            scale_to_zero_after_s=self.scale_to_zero_after_s,
            scale_up_cooldown_s=self.cooldown_s,
        )
        if decision is not None:
            self.allocations = decision
        return decision


def scaler_step(
    state: ScalerState,
    stats: tuple[int, int, int, float],
    interval_s: float,
    allocations: int,
    bounds: AdaptiveAllocations = UNBOUNDED,
    scale_to_zero_after_s: float = DEFAULT_SCALE_TO_ZERO_AFTER_S,
) -> tuple[int | None, ScalerState]:
    """Elasticsearch's `scaler.process(new Stats(...), interval, allocations); scaler.scale()`."""
    state = process(state, RecentStats(*stats), interval_s)
    return scale(bounds, state, allocations, scale_to_zero_after_s=scale_to_zero_after_s)


# --- KalmanFilter1dTests.java -------------------------------------------------------------------


def test_es_filter_equal_values():
    f = KalmanFilter1d(100, False)
    assert not f.has_value
    f = f.add(42.0, 9.0)
    assert (f.has_value, f.estimate, f.error, f.lower, f.upper) == (True, 42.0, 3.0, 39.0, 45.0)
    for _ in range(20):
        previous_error = f.error
        f = f.add(42.0, 9.0)
        assert f.estimate == 42.0
        assert f.error < previous_error


def test_es_filter_increasing_values_lag_behind():
    f = KalmanFilter1d(100, False).add(10.0, 1.0)
    for value in range(11, 20):
        previous = f.estimate
        f = f.add(float(value), 1.0)
        assert previous < f.estimate < value
    for _ in range(20):
        f = f.add(20.0, 1.0)
    assert 19.0 < f.estimate < 20.0


@pytest.mark.parametrize(
    ("autodetect", "external", "low", "high"),
    [(False, False, 49.0, 51.0), (True, False, 99.0, 100.0), (False, True, 99.0, 100.0)],
    ids=["no-detection-averages", "detected-jump", "declared-jump"],
)
def test_es_filter_big_jump(autodetect, external, low, high):
    f = KalmanFilter1d(100, autodetect).add(0.0, 100.0).add(0.0, 1.0)
    assert f.estimate == 0.0
    assert low < f.add(100.0, 1.0, external).estimate < high


@pytest.mark.parametrize(("smoothing", "low", "high"), [(1e-3, 75.0, 77.0), (1e3, 42.0, 44.0)])
def test_es_filter_smoothing(smoothing, low, high):
    f = KalmanFilter1d(smoothing, False)
    for _ in range(100):
        f = f.add(42.0, 1.0)
    assert f.estimate == 42.0
    assert low < f.add(77.0, 1.0).estimate < high


def test_filter_converges_to_a_constant_poisson_rate():
    rng = random.Random(7)
    state = ScalerState()
    for _ in range(300):
        # 10 s of Poisson arrivals at 5 requests/s.
        t, count = rng.expovariate(5.0), 0
        while t < 10.0:
            count += 1
            t += rng.expovariate(5.0)
        state = process(state, RecentStats(count, 0, 0, 0.05), 10.0)
    rate = state.request_rate
    assert abs(rate.estimate - 5.0) < 3 * rate.error
    # The error settles where the prediction and the update balance: with measurement variance
    # R = 5 x 10 / 10^2 and process variance Q = R / 100, P + Q = (Q + sqrt(Q^2 + 4QR)) / 2.
    r = 5.0 * 10 / 10**2
    q = r / 100
    steady = (q + math.sqrt(q * q + 4 * q * r)) / 2 - q
    assert rate.error == pytest.approx(math.sqrt(steady), rel=0.05)  # 0.218 requests/s
    assert state.inference_time.estimate == pytest.approx(0.05)


def test_filter_nan_update_reads_as_no_value():
    # 0 / 0 gain gives NaN, which Elasticsearch's `hasValue` treats as empty: the next value starts over.
    f = KalmanFilter1d(100, False).add(0.0, 0.0).add(0.0, 0.0)
    assert not f.has_value
    assert f.add(3.0, 1.0).estimate == 3.0


# --- AdaptiveAllocationsScalerTests.java --------------------------------------------------------


def run_scaler(rows, bounds: AdaptiveAllocations = UNBOUNDED, interval_s: float = 10.0, **kw) -> list[int | None]:
    """Rows of ((success, pending, failed, time), allocations) -> the decisions of `scale()`."""
    state, decisions = ScalerState(), []
    for stats, allocations in rows:
        decision, state = scaler_step(state, stats, interval_s, allocations, bounds, **kw)
        decisions.append(decision)
    return decisions


def test_es_scale_up_and_down():
    rows = [
        ((500, 100, 100, 0.020), 1),
        ((800, 100, 50, 0.025), 2),
        ((1000, 0, 0, 0.025), 3),
        ((0, 0, 0, NAN), 3),
        ((0, 0, 0, NAN), 3),
        ((0, 0, 0, NAN), 2),
        ((0, 0, 0, NAN), 2),
    ]
    assert run_scaler(rows) == [2, 3, None, None, 2, None, 1]


def test_es_no_oscillating():
    loads = [(880, 1), (880, 1), (920, 1), (950, 1), (980, 1), (980, 2), (880, 2), (880, 2)]
    rows = [((count, 0, 0, 0.010), allocations) for count, allocations in loads]
    assert run_scaler(rows) == [None, None, None, None, 2, None, None, None]


def test_es_respect_min_max():
    bounds = AdaptiveAllocations(True, 2, 5)
    rows = [
        ((0, 0, 0, 0.010), 1),
        ((0, 0, 0, 0.010), 2),
        ((100, 10000, 1000, 0.010), 2),
        ((500, 10000, 1000, 0.010), 5),
    ]
    state, decisions = ScalerState(), []
    for stats, allocations in rows:
        decision, state = scaler_step(state, stats, 10.0, allocations, bounds)
        decisions.append(decision)
    assert decisions == [2, None, 5, None]
    # after a while without requests (three samples, one decision), back to the minimum
    for _ in range(3):
        state = process(state, RecentStats(0, 0, 0, 0.010), 10.0)
    assert scale(bounds, state, 5)[0] == 2


def test_es_max_allocations_safeguard():
    state = process(ScalerState(), RecentStats(1_000_000, 10_000_000, 1, 0.05), 10.0)
    assert scale(UNBOUNDED, state, 1)[0] == 32
    assert scale(AdaptiveAllocations(True, 2, 77), state, 1)[0] == 77
    # min_number_of_allocations wins over the safeguard when no max is set
    assert scale(AdaptiveAllocations(True, 40, None), state, 1)[0] == 40


def test_es_scale_down_to_zero_after_no_requests():
    kw = {"scale_to_zero_after_s": 900}
    decision, state = None, ScalerState()
    for _ in range(3600):  # an hour of one request a second
        decision, state = scaler_step(state, (1, 0, 0, 0.05), 1, 1, **kw)
        assert decision is None
    for _ in range(900):  # exactly the idle time: not yet
        decision, state = scaler_step(state, (0, 0, 0, 0.05), 1, 1, **kw)
        assert decision is None
    decision, state = scaler_step(state, (1, 0, 0, 0.05), 1, 1, **kw)  # one request restarts the idle time
    assert decision is None
    for _ in range(900):
        decision, state = scaler_step(state, (0, 0, 0, 0.05), 1, 1, **kw)
        assert decision is None
    decision, state = scaler_step(state, (0, 0, 0, 0.05), 1, 1, **kw)  # one more idle second
    assert decision == 0
    for _ in range(900):
        decision, state = scaler_step(state, (0, 0, 0, 0.05), 1, 0, **kw)
        assert decision is None


def test_es_no_scale_to_zero_with_min_allocations():
    state = ScalerState()
    for _ in range(3600):
        decision, state = scaler_step(state, (1, 0, 0, 0.05), 1, 1, AdaptiveAllocations(True, 1, None), 900)
        assert decision is None


def test_es_estimation_high_variance():
    # ~100 requests/s whose inference times are log-normal (mean 3.40, variance 98.4), sampled every second.
    rng = random.Random(42)
    state, time, mean_sum, error_sum = ScalerState(), 0.0, 0.0, 0.0
    for next_measurement in range(1, 101):
        stats = RecentStats(0, 0, 0, 0.0)
        while time < next_measurement:
            t = math.exp(rng.gauss(0.1, 1.5))
            count = stats.success_count + 1
            stats = RecentStats(count, 0, 0, (stats.total_inference_time_s + t) / count)
            time += 0.01 * rng.expovariate(1.0)
        state = process(state, stats, 1.0)
        mean_sum += (state.load_upper + state.load_lower) / 2
        error_sum += (state.load_upper - state.load_lower) / 2
    mean, error = mean_sum / 100, error_sum / 100
    assert mean - error < 100 * 3.40 < mean + error
    assert error / mean < 1 - SCALE_UP_THRESHOLD


# --- AdaptiveAllocationsScalerServiceTests.java -------------------------------------------------


def test_es_service_baseline_then_scale_up_then_keep():
    # One sample a second; the stats report cumulative counts (0 after the scale-up: clamped to no requests).
    samples = [(0.0, 1, 1, 11.0), (1.0, 1, 150, 10.0), (2.0, 2, 0, 9.0)]
    state, decisions = ScalerState(), []
    for time_s, allocations, count, latency_ms in samples:
        sample = StatsSample(time_s, allocations, inference_count=count, average_inference_time_ms=latency_ms)
        decision, state = decide(UNBOUNDED, sample, state)
        decisions.append(decision)
    assert decisions == [None, 2, None]
    # Elasticsearch credits the cooldown for the last None; the load's upper bound alone keeps 2 here.
    assert state.needed_number_of_allocations == 2 and state.load_upper > 0.85


# --- hand-computed ------------------------------------------------------------------------------


def test_first_two_decisions_by_hand():
    # Step 1: 700 requests in 10 s at 20 ms. The first measurement is taken as it is.
    decision, state = scaler_step(ScalerState(), (500, 100, 100, 0.020), 10.0, 1)
    rate_var, time_var = max(1.0, 70.0 * 10) / 10**2, 0.020**2 / 700
    assert (state.request_rate.estimate, state.request_rate.variance) == (70.0, rate_var)
    assert (state.inference_time.estimate, state.inference_time.variance) == (0.020, time_var)
    load_lower = (70.0 - math.sqrt(rate_var)) * (0.020 - math.sqrt(time_var))  # 1.296
    load_upper = (70.0 + math.sqrt(rate_var)) * (0.020 + math.sqrt(time_var))  # 1.508
    assert (state.load_lower, state.load_upper) == (load_lower, load_upper)
    # 1.296 / 1 > 0.9 -> 2; 1.296 / 2 <= 0.9 stop; 1.508 / 1 >= 0.85: no step down.
    assert decision == 2 and state.dynamics_changed

    # Step 2: 950 requests at 25 ms on 2 allocations. The step after a first value (rate) and after a
    # scaling (time) both take the measurement squared as process variance.
    decision, state = scaler_step(state, (800, 100, 50, 0.025), 10.0, 2)
    p = rate_var + 95.0**2
    gain = p / (p + rate_var)  # the measurement's variance comes from the *estimate* (70/s)
    assert state.request_rate.estimate == 70.0 + gain * (95.0 - 70.0)
    assert state.request_rate.variance == (1 - gain) * p
    q = time_var + 0.025**2
    time_gain = q / (q + 0.020**2 / 950)
    assert state.inference_time.estimate == 0.020 + time_gain * (0.025 - 0.020)
    assert 2 * 0.9 < state.load_lower <= 3 * 0.9  # 2.36
    assert decision == 3


def test_burst_after_idle_scales_up_at_once():
    d = Deployment(cooldown_s=0)
    assert d.run([(0, 0.0)] * 30) == [None] * 30
    assert d.state.request_rate.estimate == 0.0
    # 1000 requests at 50 ms in 10 s: the jump is detected (the rate filter then almost forgets the past),
    # load ~ 100/s x 0.05 s = 5, lower bound 4.84 -> 4.84 / 6 <= 0.9 -> 6 allocations in one step.
    assert d.tick(1000, 0.05) == 6
    assert 99.8 < d.state.request_rate.estimate < 100.0
    assert 4.8 < d.state.load_lower < 4.9 < 5.1 < d.state.load_upper < 5.2
    capped = Deployment(AdaptiveAllocations(True, None, 4), cooldown_s=0)
    capped.run([(0, 0.0)] * 30)
    assert capped.tick(1000, 0.05) == 4
    assert capped.state.needed_number_of_allocations == 6


# --- the service's rules through `decide` ------------------------------------------------------


def test_first_sample_is_only_the_baseline():
    sample = StatsSample(time_s=0.0, number_of_allocations=1, inference_count=10**6, average_inference_time_ms=50)
    decision, state = decide(UNBOUNDED, sample, ScalerState())
    assert decision is None
    assert not state.request_rate.has_value
    assert state.last_stats == RecentStats(10**6, 0, 0, 0.05)


def test_steady_load_climbs_to_max_and_no_further_without_waiting_for_the_cooldown():
    d = Deployment(AdaptiveAllocations(True, 1, 4), cooldown_s=300)
    # the load grows by about one allocation's worth each interval
    rows = [(180 * k, 0.05) for k in range(1, 8)] + [(2000, 0.05)] * 5
    assert d.run(rows) == [None, 2, 3, 4, None, None, None, None, None, None, None, None]
    assert d.allocations == 4
    assert d.state.needed_number_of_allocations == 11  # load 200/s x 0.05 s = 10, lower bound 9.9


def test_no_max_caps_at_32():
    d = Deployment(AdaptiveAllocations(True, None, None))
    assert d.tick(100_000, 0.05) == 32
    assert d.tick(100_000, 0.05) is None


def test_load_drop_waits_for_the_cooldown_after_a_scale_up():
    d = Deployment(cooldown_s=60)
    assert d.tick(1000, 0.05) == 6  # t=10: scale-up, cooldown until t=70
    decisions = d.run([(0, 0.0)] * 8)  # t=20..90
    assert decisions[:5] == [None] * 5  # t=20..60: held back although the scaler wants fewer
    assert d.state.needed_number_of_allocations < 6
    assert decisions[5:] == [1, None, None]  # t=70: the first tick outside the cooldown


def test_scale_down_held_while_starting_or_soon_after_the_route_started():
    d = Deployment(cooldown_s=60, allocations=3)
    assert [d.tick(routing_starting=True) for _ in range(3)] == [None] * 3  # t=10..30
    assert d.state.needed_number_of_allocations == 1
    assert d.tick() == 1

    d = Deployment(cooldown_s=60, allocations=3)
    assert [d.tick(route_start_time_s=5.0) for _ in range(6)] == [None] * 6  # t=10..60 < 5 + 60
    assert d.tick(route_start_time_s=5.0) == 1  # t=70


def test_scale_up_not_held_while_starting():
    d = Deployment()
    assert d.tick(1000, 0.05, routing_starting=True, route_start_time_s=5.0) == 6


def test_only_started_deployments_are_rescaled():
    d = Deployment()
    assert d.tick(1000, 0.05, assignment_state="starting") is None
    assert d.tick(1000, 0.05) == 6


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [
        (AdaptiveAllocations(True, None, None), [None, None, None, 0, None, None]),
        (AdaptiveAllocations(True, 0, 3), [None, None, None, 0, None, None]),
        (AdaptiveAllocations(True, 1, None), [None] * 6),
        (AdaptiveAllocations(True, 2, None), [2, None, None, None, None, None]),
    ],
    ids=["min-unset", "min-0", "min-1", "min-2"],
)
def test_idle_time_scales_to_zero_only_without_a_minimum(bounds, expected):
    # idle 10, 20, 30 s: not more than 30 s yet; 40 s: zero
    d = Deployment(bounds, scale_to_zero_after_s=30)
    assert d.run([(0, 0.0)] * 6) == expected


def test_at_zero_a_request_asks_for_one_allocation_and_holds_off_the_next_scale_to_zero():
    d = Deployment(scale_to_zero_after_s=20, cooldown_s=100)
    assert d.run([(0, 0.0)] * 3) == [None, None, 0]  # t=30
    assert d.run([(0, 0.0)] * 2) == [None, None]  # no route at zero: nothing to process
    assert d.state.time_without_requests_s == 30

    one, d.state = on_request_at_zero(d.bounds, d.state, now_s=55.0)
    assert one == 1 and d.state.time_without_requests_s == 0
    d.allocations = 1
    # the waiting request is served; idle again past 20 s, but within 100 s of the scale-up
    decisions = d.run([(1, 0.05)] + [(0, 0.0)] * 11)  # t=60..170
    assert decisions[:10] == [None] * 10  # idle > 20 s from t=90 on, but held until 55 + 100
    assert decisions[10:] == [0, None]  # t=160


@pytest.mark.parametrize(
    ("bounds", "in_flight", "expected", "idle_reset"),
    [
        (AdaptiveAllocations(True, None, 2), False, 1, True),
        (AdaptiveAllocations(True, 0, 2), False, 1, True),
        (AdaptiveAllocations(True, 0, 2), True, None, True),  # one scale-from-zero at a time
        (AdaptiveAllocations(True, 1, 2), False, None, False),
        (AdaptiveAllocations(False, None, None), False, None, False),
    ],
)
def test_on_request_at_zero(bounds, in_flight, expected, idle_reset):
    state = ScalerState(time_without_requests_s=99.0)
    decision, after = on_request_at_zero(bounds, state, now_s=5.0, scale_from_zero_in_flight=in_flight)
    assert decision == expected
    assert bounds.scales_to_zero == (expected is not None or in_flight)
    assert (after.time_without_requests_s == 0.0) == idle_reset
    assert after.last_scale_up_time_s == (5.0 if expected else None)


def test_nothing_happens_when_disabled():
    d = Deployment(AdaptiveAllocations(False, 0, 8), scale_to_zero_after_s=10)
    assert d.run([(100_000, 0.05)] * 3 + [(0, 0.0)] * 5) == [None] * 8
    assert d.state == ScalerState()


def test_disabling_forgets_the_stats_but_not_the_last_scale_up():
    d = Deployment(cooldown_s=1000)
    assert d.tick(1000, 0.05) == 6
    d.bounds = AdaptiveAllocations(False)
    assert d.tick(0) is None
    assert d.state == ScalerState(last_scale_up_time_s=10.0)
    d.bounds = UNBOUNDED
    assert d.tick(0) is None  # a new baseline
    assert d.run([(0, 0.0)] * 5) == [None] * 5  # still within the cooldown of the scale-up at t=10


def test_pending_and_failures_count_as_requests_but_pending_is_diffed():
    d = Deployment(cooldown_s=0)
    d.tick(0, pending=500)  # 500 newly queued requests: 50/s, without a measured time (1 s assumed)
    assert d.state.request_rate.estimate == 50.0
    d.tick(0)  # the same 500 still waiting add nothing (Elasticsearch diffs the gauge): 0/s measured.
    # Measurement variance 50 x 10 / 10^2 = 5, process variance 0^2 (the step after the first value),
    # estimate variance 5: the gain is 1/2. Counting the 500 again would have kept 50.
    assert d.state.request_rate.estimate == 25.0
    d.tick(0, errors=300)
    assert d.state.request_rate.estimate > 29.0


def test_counters_going_back_count_as_zero():
    d = Deployment()
    d.tick(100, 0.05)
    d.count, d.total_time_s = 10, 0.5  # the node restarted
    d.tick(0)
    assert d.state.request_rate.estimate < 10.0


def test_sample_time_must_increase():
    d = Deployment()
    d.now -= 10.0
    with pytest.raises(ValueError, match="is not after the previous one"):
        d.tick(0)


def _es_loops(load_lower: float, load_upper: float, n: int) -> int:
    """The two loops of `AdaptiveAllocationsScaler.scale`, literally (finite loads, n >= 1)."""
    while load_lower / n > 0.9:
        n += 1
    while n > 1 and load_upper / (n - 1) < 0.85:
        n -= 1
    return n


def test_counting_shortcut_matches_elasticsearch_loops():
    rng = random.Random(3)
    for _ in range(5000):
        lower = rng.choice([0.0, rng.uniform(0, 3), rng.uniform(0, 100), rng.uniform(0, 1000)])
        upper = lower * rng.uniform(1.0, 1.5)
        n = rng.randint(1, 40)
        assert _scale_down(upper, _scale_up(lower, n)) == _es_loops(lower, upper, n), (lower, upper, n)
    for n in (1, 2, 7):  # exact multiples of the thresholds
        for k in range(0, 60):
            assert _scale_down(k * 0.9, _scale_up(k * 0.9, n)) == _es_loops(k * 0.9, k * 0.9, n)
            assert _scale_down(k * 0.85, _scale_up(k * 0.85, n)) == _es_loops(k * 0.85, k * 0.85, n)
    assert _scale_up(0.0, 0) == 0 and _scale_up(0.5, 0) == 1  # load / 0: NaN or infinity in Java
    assert _scale_up(math.nan, 3) == 3 and _scale_down(math.nan, 3) == 3
