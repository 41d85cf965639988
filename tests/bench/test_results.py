from __future__ import annotations

import pytest

from elserve.bench.agreement import compare, rows_by_id
from elserve.bench.options import Allocation
from elserve.bench.results import Latency, Timing


@pytest.mark.parametrize(
    ("count", "p50", "p99"),
    [
        (1, 1.0, 1.0),
        (2, 1.0, 2.0),
        (100, 50.0, 99.0),
        (200, 100.0, 198.0),  # nearest rank: ceil(0.99 * 200) = 198, not 199
        (1000, 500.0, 990.0),
    ],
)
def test_latency_quantiles_are_nearest_rank(count: int, p50: float, p99: float) -> None:
    seconds = [i / 1000 for i in range(count, 0, -1)]  # 1..count ms, unsorted
    latency = Latency.of(seconds)
    assert latency is not None
    assert (latency.p50_ms, latency.p99_ms, latency.count) == pytest.approx((p50, p99, count))


def test_no_latency_without_requests() -> None:
    assert Latency.of([]) is None


def test_timing_rates() -> None:
    timing = Timing(setting=8, seconds=2.0, docs=10, tokens=1000)
    assert (timing.tokens_per_s, timing.docs_per_s) == (500.0, 5.0)
    assert Timing(1, 0.0, 1, 1).tokens_per_s == 0.0


@pytest.fixture
def agree():
    return compare


def test_identical_vectors_agree_fully(agree) -> None:
    rows = [{1: 0.5, 2: 0.25}, {7: 1.0}]
    agreement = agree(rows, [dict(r) for r in rows])
    assert (agreement.texts, agreement.max_abs_diff, agreement.overlap_mean, agreement.overlap_min) == (2, 0, 1, 1)


def test_a_missing_token_counts_its_whole_weight_and_leaves_the_top_k(agree) -> None:
    reference = [{i: 1.0 - i / 100 for i in range(20)}]
    other = [{i: 1.0 - i / 100 for i in range(1, 21)}]  # token 0 missing, token 20 new
    agreement = agree(reference, other)
    assert agreement.max_abs_diff == pytest.approx(1.0)
    assert agreement.overlap_mean == pytest.approx(19 / 20)


def test_vectors_shorter_than_k_compare_over_what_they_have(agree) -> None:
    agreement = agree([{1: 0.5, 2: 0.4}], [{1: 0.5, 3: 0.4}])
    assert agreement.overlap_min == 0.5
    assert agreement.max_abs_diff == pytest.approx(0.4)


def test_compare_needs_as_many_vectors() -> None:
    with pytest.raises(ValueError, match="2 reference vectors against 1"):
        compare([{}, {}], [{}])


def test_rendered_tokens_map_back_to_their_ids() -> None:
    vocab = ["[PAD]", "a.b", "a__b", "##.", "word"]
    # The API renames `.` to `__`; a name two ids share stands for the first, as rendering keeps it.
    rows = rows_by_id([{"a__b": 0.5, "##__": 0.25, "word": 0.125}], vocab)
    assert rows == [{1: 0.5, 3: 0.25, 4: 0.125}]


@pytest.mark.parametrize(("text", "expected"), [("1x2", (1, 2)), ("2X1", (2, 1)), ("4x4", (4, 4))])
def test_allocations_parse(text: str, expected: tuple[int, int]) -> None:
    allocation = Allocation.parse(text)
    assert (allocation.allocations, allocation.threads) == expected
    assert str(allocation) == text.lower()


@pytest.mark.parametrize("text", ["2", "x2", "1x2x3", "0x2", "ax1"])
def test_bad_allocations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"ALLOCATIONSxTHREADS|at least 1"):
        Allocation.parse(text)
