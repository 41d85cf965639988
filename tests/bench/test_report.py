"""The report's ratios and the mixed-load table: what each row is set against."""

from __future__ import annotations

import pytest
from rich.console import Console

from elserve.bench.mixed_report import mixed_table
from elserve.bench.options import BenchOptions
from elserve.bench.report import ratio_to_in_process, results_table
from elserve.bench.results import Latency, MixedLoad, RunnerResult, Timing


def row(name: str, tokens_per_s: float, group: str = "elserve", shape: str = "base") -> RunnerResult:
    return RunnerResult(name, group, shape, "clients", Timing(8, 1.0, 10, int(tokens_per_s)))


def test_an_http_row_is_set_against_the_in_process_row_of_its_precision() -> None:
    results = [
        row("elserve exact", 1000),
        row("elserve int8", 2000),
        row("elserve exact", 4000, shape="tiny"),
        row("elserve http 1x2", 900, "http"),
        row("elserve http int8 1x2", 1500, "http"),
        row("onnxruntime", 800, "peer"),
    ]
    ratios = {(r.shape, r.name): ratio_to_in_process(r, results) for r in results}
    assert ratios[("base", "elserve http 1x2")] == pytest.approx(0.9)
    assert ratios[("base", "elserve http int8 1x2")] == pytest.approx(0.75)
    assert ratios[("base", "elserve exact")] is None and ratios[("base", "onnxruntime")] is None
    # No in-process row of that shape (--no-in-process): no ratio.
    assert ratio_to_in_process(row("elserve http 2x1", 500, "http", shape="tiny"), results[:2]) is None
    console = Console(width=250, record=True)
    console.print(results_table(results, "t", 2))
    assert "x in-" in console.export_text()


def test_the_mixed_table_states_what_the_queries_cost_the_machine() -> None:
    idle = Latency(30.0, 40.0, 200)
    mixed = MixedLoad(
        idle, Latency(35.0, 90.0, 600), Timing(8, 60.0, 100, 60_000), Timing(8, 60.0, 90, 51_000), 100.0, 0.125
    )
    result = row("elserve http 1x2", 1000, "http")
    result.mixed = mixed
    console = Console(width=250, record=True)
    console.print(mixed_table([result]))
    text = console.export_text()
    assert "12.5%" in text and "0.85" in text and "2.25" in text  # share, bulk x, p99 x idle
    assert mixed.throughput_ratio == pytest.approx(0.85) and mixed.p99_ratio == pytest.approx(2.25)


def test_the_mixed_tables_p99_ratio_is_against_the_paced_idle_queries_when_measured() -> None:
    back_to_back, paced = Latency(3.0, 5.0, 300), Latency(8.0, 12.0, 300)
    alone, with_queries = Timing(8, 20.0, 100, 40_000), Timing(8, 20.0, 95, 38_000)
    mixed = MixedLoad(back_to_back, Latency(9.0, 30.0, 200), alone, with_queries, 100.0, 0.02, paced_idle=paced)
    assert mixed.baseline is paced and mixed.p99_ratio == pytest.approx(2.5)
    result = row("elserve http 2x1", 1000, "http")
    result.mixed = mixed
    console = Console(width=250, record=True)
    console.print(mixed_table([result]))
    text = console.export_text()
    assert "3.0 / 5.0" in text and "8.0 / 12.0" in text and "2.50" in text  # both idles, ratio to paced


def test_row_seconds_and_latency_requests_per_shape() -> None:
    options = BenchOptions(row_seconds=60, tiny_row_seconds=15, latency_requests=1000, base_latency_requests=200)
    assert (options.row_seconds_for("base"), options.row_seconds_for("tiny")) == (60, 15)
    assert (options.latency_requests_for("base"), options.latency_requests_for("tiny")) == (200, 1000)
    assert BenchOptions(latency_requests=50).latency_requests_for("base") == 50  # never more than asked
    assert BenchOptions().row_seconds_for("base") == 60  # a minute of load per BERT-base row
    with pytest.raises(ValueError, match="--tiny-row-seconds must be positive"):
        BenchOptions(tiny_row_seconds=0)
    with pytest.raises(ValueError, match="--base-latency-requests must be at least 1"):
        BenchOptions(base_latency_requests=0)


def test_precisions_named_must_include_exact() -> None:
    assert BenchOptions(precisions=("exact",)).precisions == ("exact",)
    with pytest.raises(ValueError, match="--precisions must include exact"):
        BenchOptions(precisions=("int8",))
