"""The mixed-load and memory tables of `elserve bench` (beside report.py's main table)."""

from __future__ import annotations

from rich.table import Table

from elserve.bench.results import RunnerResult, WorkerMemory

_MIB = 1024 * 1024


def mixed_table(results: list[RunnerResult]) -> Table:
    table = Table(title="mixed load (bulk clients + one query client)", title_justify="left")
    for header in (
        "model",
        "runner",
        "query ms idle\nback to back\np50 / p99",
        "query ms idle\npaced\np50 / p99",
        "query ms under bulk\np50 / p99",
        "queries",
        "p99 x idle\n(paced)",
        "bulk tokens/s\nalone / with queries",
        "bulk x",
        "queries' CPU\n% of machine",
    ):
        table.add_column(header, justify="left" if header in ("model", "runner") else "right")
    for r in results:
        m = r.mixed
        if m is None:
            continue
        row = [r.shape, r.name]
        under = "-" if m.under_load is None else f"{m.under_load.p50_ms:.1f} / {m.under_load.p99_ms:.1f}"
        row += [
            f"{m.idle.p50_ms:.1f} / {m.idle.p99_ms:.1f}",
            "-" if m.paced_idle is None else f"{m.paced_idle.p50_ms:.1f} / {m.paced_idle.p99_ms:.1f}",
            under,
            "-" if m.under_load is None else str(m.under_load.count),
            "-" if m.p99_ratio is None else f"{m.p99_ratio:.2f}",
            f"{m.bulk_alone.tokens_per_s:,.0f} / {m.bulk_with_queries.tokens_per_s:,.0f}",
            f"{m.throughput_ratio:.2f}",
            "-" if m.query_cpu_share is None else f"{m.query_cpu_share:.1%}",
        ]
        table.add_row(*row)
    return table


def memory_table(results: list[RunnerResult]) -> Table:
    """Per process, fresh (as the endpoint was created) and after the load: the fork server (the
    runtime), the model's parent (the runtime and the model), the first allocation and each extra
    one, the query lane. What an extra allocation costs the machine is its USS; its shared pages
    are mostly the parent's."""
    table = Table(title="memory per process (MiB): fresh, and after the load", title_justify="left")
    for header in ("model", "runner", "when", "process", "USS", "PSS", "shared (RSS - USS)"):
        table.add_column(header, justify="left" if header in ("model", "runner", "when", "process") else "right")
    for r in results:
        for when, processes in (("fresh", r.fresh_memory), ("after load", r.workers_memory)):
            for name, w in zip(_names(processes), processes, strict=True):
                table.add_row(
                    r.shape, r.name, when, name, f"{w.uss_bytes / _MIB:,.1f}", f"{w.pss_bytes / _MIB:,.1f}",
                    f"{w.shared_bytes / _MIB:,.1f}",
                )  # fmt: skip
    return table


def _names(processes: list[WorkerMemory]) -> list[str]:
    names, allocations = [], 0
    for w in processes:
        if w.role == "allocation":
            allocations += 1
            names.append("first allocation" if allocations == 1 else f"extra allocation {allocations - 1}")
        else:
            names.append(w.role)
    return names
