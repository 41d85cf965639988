"""The mixed-load and memory table of `elserve bench` (beside report.py's main table)."""

from __future__ import annotations

from rich.table import Table

from elserve.bench.results import RunnerResult

_MIB = 1024 * 1024


def mixed_table(results: list[RunnerResult]) -> Table:
    table = Table(
        title="mixed load (bulk clients + one query client) and memory per worker", title_justify="left"
    )
    for header in (
        "model",
        "runner",
        "query ms idle\np50 / p99",
        "query ms under bulk\np50 / p99",
        "p99 x idle",
        "bulk tokens/s\nalone / with queries",
        "bulk x",
        "workers USS MiB (PSS)\nallocations, query lane",
        "fork server\nUSS MiB",
    ):
        table.add_column(header, justify="left" if header in ("model", "runner") else "right")
    for r in results:
        if r.mixed is None and not r.workers_memory:
            continue
        m = r.mixed
        row = [r.shape, r.name]
        if m is None:
            row += ["-"] * 5
        else:
            under = "-" if m.under_load is None else f"{m.under_load.p50_ms:.1f} / {m.under_load.p99_ms:.1f}"
            row += [
                f"{m.idle.p50_ms:.1f} / {m.idle.p99_ms:.1f}",
                under,
                "-" if m.p99_ratio is None else f"{m.p99_ratio:.2f}",
                f"{m.bulk_alone.tokens_per_s:,.0f} / {m.bulk_with_queries.tokens_per_s:,.0f}",
                f"{m.throughput_ratio:.2f}",
            ]
        workers = ", ".join(
            f"{w.uss_bytes / _MIB:,.0f} ({w.pss_bytes / _MIB:,.0f})"
            for w in r.workers_memory
        )
        row += [workers or "-", "-" if r.fork_server_uss_bytes is None else f"{r.fork_server_uss_bytes / _MIB:,.0f}"]
        table.add_row(*row)
    return table
