"""`elserve bench`: every runner over the same texts in one invocation, then the table and the
JSON file. This module imports only typer at load (the CLI imports it); the rest comes when run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from elserve.bench.options import BenchOptions


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"a comma-separated list of integers, got [{text}]", param_hint=name) from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"a non-empty list of integers >= 1, got [{text}]", param_hint=name)
    return values


def bench(
    corpus: Annotated[
        Path | None,
        typer.Option(
            help="JSON lines with a `text` field, or plain text with one passage per line. "
            "Default: ../shared/bench/corpus.jsonl beside the checkout."
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N passages.")] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Model directory to measure. Default: .elser_model_2 from the data dir's cache.")
    ] = None,
    data_dir: Annotated[Path, typer.Option(help="Model cache, ONNX exports, generated models and logs.")] = Path(
        "data"
    ),
    model_shape: Annotated[
        str, typer.Option(help="base (a random BERT-base, ELSER v2's size), tiny (the model) or both (base first).")
    ] = "both",
    base_limit: Annotated[int, typer.Option(help="Passages for the BERT-base shape.")] = 100,
    threads: Annotated[int, typer.Option(help="Intra-op threads of every in-process runner.")] = 2,
    precisions: Annotated[
        str | None,
        typer.Option(
            help="elserve's precisions to measure, comma-separated (exact, bf16, int8), exact included. "
            "Default: every one this CPU runs."
        ),
    ] = None,
    peers: Annotated[bool, typer.Option("--peers/--no-peers", help="sentence-transformers and ONNX Runtime.")] = True,
    in_process: Annotated[
        bool, typer.Option("--in-process/--no-in-process", help="elserve's encoder in-process.")
    ] = True,
    http: Annotated[bool, typer.Option("--http/--no-http", help="elserve end to end over HTTP.")] = True,
    url: Annotated[str | None, typer.Option(help="Measure this running server instead of starting one.")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="ELASTIC_PASSWORD", help="The elastic user's password, with --url.")
    ] = None,
    allocations: Annotated[str, typer.Option(help="Endpoints to measure, ALLOCATIONSxTHREADS, comma-separated.")] = (
        "1x2,2x1"
    ),
    clients: Annotated[int, typer.Option(help="Concurrent HTTP clients.")] = 8,
    docs_per_request: Annotated[int, typer.Option(help="Texts per HTTP request.")] = 16,
    latency_requests: Annotated[
        int,
        typer.Option(help="Sequential requests of one short text (the median of many: a shared machine has bursts)."),
    ] = 1000,
    base_latency_requests: Annotated[
        int, typer.Option(help="At most this many of them for the BERT-base shape (~100x the cost).")
    ] = 200,
    mixed: Annotated[
        bool,
        typer.Option(
            "--mixed/--no-mixed",
            help="Per endpoint, the bulk load again with one query client beside it (the mixed-load table).",
        ),
    ] = True,
    query_interval_ms: Annotated[
        float, typer.Option(help="The mixed load's query client sends one short text this often.")
    ] = 100.0,
    row_seconds: Annotated[
        float,
        typer.Option(
            help="BERT-base: each row's load lasts at least this long: an in-process row runs the corpus again, "
            "an HTTP bulk pass (the row's and the mixed one) sends it again."
        ),
    ] = 60.0,
    tiny_row_seconds: Annotated[float, typer.Option(help="The same for SPLADE-tiny.")] = 60.0,
    tune_docs: Annotated[int, typer.Option(help="Passages each batch setting is tried on.")] = 256,
    st_batch_sizes: Annotated[str, typer.Option(help="sentence-transformers batch sizes to try.")] = "1,8,32",
    ort_batch_sizes: Annotated[str, typer.Option(help="ONNX Runtime batch sizes to try.")] = "1,4,16",
    token_budgets: Annotated[str, typer.Option(help="elserve token budgets per batch to try.")] = "2048,4096,8192",
    output: Annotated[Path | None, typer.Option(help="JSON result file. Default: bench-results/<time>.json.")] = None,
) -> None:
    """Measure elserve (in-process and over HTTP) against sentence-transformers and ONNX Runtime.

    Every runner sees the same texts and is credited with the same tokens (the model's
    tokenizer, specials included, cut at its window). The peers need the `bench` extra.
    For an AVX2 CPU's table on an AVX-512 machine, run it with ATEN_CPU_CAPABILITY=avx2
    ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 in its environment: every runner, the
    server and its workers inherit it (ONNX Runtime has no such switch).
    """
    try:
        options = BenchOptions(
            corpus=corpus,
            limit=limit,
            model_dir=model_dir,
            data_dir=data_dir,
            model_shape=model_shape,
            base_limit=base_limit,
            threads=threads,
            precisions=None if precisions is None else tuple(p.strip() for p in precisions.split(",") if p.strip()),
            peers=peers,
            inprocess=in_process,
            http=http,
            url=url,
            password=password if url is not None else None,
            allocations=tuple(a.strip() for a in allocations.split(",") if a.strip()),
            clients=clients,
            docs_per_request=docs_per_request,
            latency_requests=latency_requests,
            base_latency_requests=base_latency_requests,
            mixed=mixed,
            query_interval_ms=query_interval_ms,
            row_seconds=row_seconds,
            tiny_row_seconds=tiny_row_seconds,
            tune_docs=tune_docs,
            st_batch_sizes=_ints(st_batch_sizes, "--st-batch-sizes"),
            ort_batch_sizes=_ints(ort_batch_sizes, "--ort-batch-sizes"),
            token_budgets=_ints(token_budgets, "--token-budgets"),
            output=output,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    raise typer.Exit(main(options))


def main(options: BenchOptions) -> int:
    """Run the benchmark; 0 when every runner finished, 1 when one failed (the rest still run)."""
    from elserve.bench.session import BenchSession

    return BenchSession(options).run()
