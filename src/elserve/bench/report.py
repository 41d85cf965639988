"""The results as a rich table on the terminal and as a JSON file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from rich.table import Table

from elserve.bench.options import Allocation
from elserve.bench.results import Latency, RunnerResult

_MIB = 1024 * 1024
# Elastic's published ELSER v2 throughput (the optimized `_linux-x86_64` model): 26 documents/s of
# 256 tokens on 16 vCPUs, about 700 tokens/s per single-thread allocation ("ELSER benchmarks" in
# Elastic's ELSER documentation). Every row states its own tokens/s per thread beside it.
ELSER_TOKENS_PER_THREAD = 700


def best_peer(results: list[RunnerResult], shape: str) -> RunnerResult | None:
    peers = [r for r in results if r.shape == shape and r.group == "peer"]
    return max(peers, key=lambda r: r.best.tokens_per_s, default=None)


def ratio_to_best_peer(result: RunnerResult, results: list[RunnerResult]) -> float | None:
    peer = best_peer(results, result.shape)
    if peer is None or peer.best.tokens_per_s == 0:
        return None
    return result.best.tokens_per_s / peer.best.tokens_per_s


def ratio_to_in_process(result: RunnerResult, results: list[RunnerResult]) -> float | None:
    """An HTTP row's tokens/s over elserve's own in-process row of the same precision (whose
    corpus is sorted by length as a whole): what serving costs."""
    if result.group != "http":
        return None
    words = result.name.split()  # "elserve http 1x2", "elserve http int8 1x2"
    precision = words[2] if len(words) == 4 else "exact"
    own = next((r for r in results if r.shape == result.shape and r.name == f"elserve {precision}"), None)
    if own is None or own.best.tokens_per_s == 0:
        return None
    return result.best.tokens_per_s / own.best.tokens_per_s


def threads_of(result: RunnerResult, threads: int) -> int:
    """The threads a row ran on: its endpoint's allocations x threads over HTTP, else `threads`."""
    if result.group == "http":
        return Allocation.parse(result.name.rsplit(" ", 1)[-1]).total
    return threads


def results_table(results: list[RunnerResult], title: str, threads: int) -> Table:
    table = Table(title=title, title_justify="left")
    for header, justify in [
        ("model", "left"),
        ("runner", "left"),
        ("best at", "left"),
        ("tokens/s", "right"),
        (f"per thread\n(ELSER {ELSER_TOKENS_PER_THREAD})", "right"),
        ("docs/s", "right"),
        ("x best\npeer", "right"),
        ("x in-\nprocess", "right"),
        ("short text ms\np50 / p99", "right"),
        ("under load ms\np50 / p99", "right"),
        ("peak RSS\nMiB", "right"),
        ("vs elserve exact\nmax|Δ| / top-20", "right"),
        ("load\nafter", "right"),
        ("kernels\nlayers / head short, bulk", "left"),
    ]:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for r in results:
        ratio = ratio_to_best_peer(r, results)
        served = ratio_to_in_process(r, results)
        agreement = "reference" if r.name == "elserve exact" else "-"
        if r.agreement is not None:
            agreement = f"{r.agreement.max_abs_diff:.1e} / {r.agreement.overlap_mean:.0%}"
        table.add_row(
            r.shape,
            r.name,
            _setting(r.setting_name, r.best.setting),
            f"{r.best.tokens_per_s:,.0f}",
            f"{r.best.tokens_per_s / threads_of(r, threads):,.0f}",
            f"{r.best.docs_per_s:,.1f}",
            "-" if ratio is None else f"{ratio:.2f}",
            "-" if served is None else f"{served:.2f}",
            _latency(r.latency),
            _latency(r.latency_under_load),
            "-" if r.peak_rss_bytes is None else f"{r.peak_rss_bytes / _MIB:,.0f}",
            agreement,
            "-" if r.load_after is None else f"{r.load_after:.1f}",
            _kernels(r.kernels),
        )
    return table


def _kernels(kernels: dict[str, str] | None) -> str:
    if not kernels:
        return "-"
    layers = kernels.get("layers", "?")
    if "attention" in kernels:
        layers += f" ({kernels['attention']} attention)"
    return f"{layers} / {kernels.get('head_short', '?')}, {kernels.get('head_bulk', '?')}"


def _setting(name: str, value: int) -> str:
    return f"{value} {name}" if name == "clients" else f"{name} {value}"


def _latency(latency: Latency | None) -> str:
    if latency is None:
        return "-"
    return f"{latency.p50_ms:.1f} / {latency.p99_ms:.1f}"


def tuning_table(results: list[RunnerResult]) -> Table:
    """Every setting tried, tokens/s on the tuning sample (the best one then ran the corpus)."""
    table = Table(title="settings tried (tokens/s on the tuning sample)", title_justify="left")
    table.add_column("model")
    table.add_column("runner")
    table.add_column("tried")
    for r in results:
        if r.tuning:
            tried = ", ".join(f"{_setting(r.setting_name, t.setting)}: {t.tokens_per_s:,.0f}" for t in r.tuning)
            table.add_row(r.shape, r.name, tried)
    return table


def result_record(result: RunnerResult, results: list[RunnerResult]) -> dict[str, object]:
    record = dataclasses.asdict(result)
    record.pop("sample")
    for timing in [record["best"], *record["tuning"]]:
        timing["tokens_per_s"] = timing["tokens"] / timing["seconds"] if timing["seconds"] else None
        timing["docs_per_s"] = timing["docs"] / timing["seconds"] if timing["seconds"] else None
    record["ratio_to_best_peer"] = ratio_to_best_peer(result, results)
    record["ratio_to_in_process"] = ratio_to_in_process(result, results)
    return record


def write_json(path: Path, document: dict[str, object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    return path
