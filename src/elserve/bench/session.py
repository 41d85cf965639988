"""One `elserve bench` invocation: for each model shape, every runner over the same workload,
then agreement against elserve's exact vectors, the tables, and the JSON file."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from elserve.bench.agreement import compare, rows_by_id
from elserve.bench.base_model import BERT_BASE, build_random_bert
from elserve.bench.corpus import Workload, default_corpus_path, read_corpus
from elserve.bench.inprocess import EXACT, FidelityJob, InProcessJob, precisions, run_elserve, run_fidelity
from elserve.bench.isolated import RunnerFailed, run_isolated
from elserve.bench.machine import machine_info, product_throughput
from elserve.bench.measure import Measured, MeasureJob
from elserve.bench.mixed_report import memory_table, mixed_table
from elserve.bench.onnx_export import onnx_path_for, quantize_export, run_export
from elserve.bench.options import BenchOptions
from elserve.bench.peers import OFFLINE_ENV, PeerJob, missing_peer_libraries, run_onnxruntime, run_sentence_transformers
from elserve.bench.report import best_peer, result_record, results_table, tuning_table, write_json
from elserve.bench.results import RunnerResult
from elserve.runtime import Encoder, Tokenizer, heap
from elserve.runtime.cpu import bf16_refusal
from elserve.runtime.int8 import REFUSED

REFERENCE = f"elserve {EXACT}"


class BenchSession:
    def __init__(self, options: BenchOptions, console: Console | None = None) -> None:
        self.options = options
        # A result table is wide: give it room when the output is a file or a pipe.
        self.console = console or Console(width=None if Console().is_terminal else 150)
        self.started = datetime.now(UTC)
        stamp = self.started.strftime("%Y%m%dT%H%M%SZ")
        self.work_dir = options.data_dir / "bench"
        self.log_dir = self.work_dir / "logs" / stamp
        self.output = options.output or Path("bench-results") / f"{stamp}.json"
        self.results: list[RunnerResult] = []
        self.fidelity: dict[str, dict] = {}
        self.refusals: list[dict[str, str]] = []
        self.failures: list[dict[str, str]] = []
        self.workloads: dict[str, dict[str, Any]] = {}

    def run(self) -> int:
        options = self.options
        corpus = options.corpus or default_corpus_path()
        if corpus is None:
            self.console.print("[red]no corpus: pass --corpus (../shared/bench/corpus.jsonl is not there)")
            return 2
        machine: dict[str, Any] = machine_info()
        self.console.print(f"[bold]elserve bench[/] on {machine['cpu_model']} ({machine['usable_cpus']} CPUs usable)")
        cpu = machine["cpu"]
        forced = " ".join(f"{k}={v}" for k, v in cpu["forced"].items())
        self.console.print(
            f"{cpu['arch']}, torch dispatch {cpu['torch_capability']}, features: {' '.join(cpu['features']) or '-'}"
            + (f" (forced: {forced})" if forced else "")
        )
        limits = machine["head_product_g_per_s"] = product_throughput()
        self.console.print(
            "the head's product, 256 x 128 x 30,522, one thread, G(FL)OP/s: "
            + ", ".join(f"{name} {rate:,.0f}" for name, rate in limits.items())
        )
        if bf16_refused := bf16_refusal():
            self.console.print(f"[yellow]elserve bf16 skipped: {escape(bf16_refused)}")
        model_dir = options.model_dir or self._ensure_model()
        for shape in options.shapes:
            shape_dir = model_dir if shape == "tiny" else self._base_model(model_dir)
            limit = options.limit if shape == "tiny" else min(options.limit or options.base_limit, options.base_limit)
            workload = Workload.count(read_corpus(corpus, limit), shape_dir)
            self.workloads[shape] = {"model_dir": str(shape_dir), "docs": workload.docs, "tokens": workload.tokens}
            self.console.print(
                f"[bold]{shape}[/]: {shape_dir}: {workload.docs:,} texts, {workload.tokens:,} tokens "
                f"({workload.tokens / workload.docs:.0f} a text, specials included)"
            )
            self._run_shape(shape, shape_dir, workload)
        self.console.print(results_table(self.results, f"elserve bench, {options.threads} threads", options.threads))
        if any(r.tuning for r in self.results):
            self.console.print(tuning_table(self.results))
        if any(r.mixed for r in self.results):
            self.console.print(mixed_table(self.results))
        if any(r.workers_memory for r in self.results):
            self.console.print(memory_table(self.results))
        for failure in self.failures:
            self.console.print(f"[red]{failure['runner']} failed:[/] {failure['error'].splitlines()[-1]}")
        document: dict[str, object] = {
            "date": self.started.isoformat(),
            "finished": datetime.now(UTC).isoformat(),
            "corpus": str(corpus),
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
            "machine": machine,
            "workloads": self.workloads,
            "best_peer": {s: getattr(best_peer(self.results, s), "name", None) for s in options.shapes},
            "results": [result_record(r, self.results) for r in self.results],
            "fidelity": self.fidelity,
            "failures": self.failures,
            "refused": self.refusals,
            "logs": str(self.log_dir),
        }
        self.console.print(f"results: {write_json(self.output, document)}")
        return 1 if self.failures else 0

    # -- models ----------------------------------------------------------------------------

    def _ensure_model(self) -> Path:
        from elserve.models.cache import ModelCache
        from elserve.models.downloads import ModelDownloads

        cache = ModelCache(self.options.data_dir / "models")
        return asyncio.run(ModelDownloads(cache).ensure(".elser_model_2"))

    def _base_model(self, tokenizer_dir: Path) -> Path:
        target = self.work_dir / "models" / f"{BERT_BASE.name}-random-seed0"
        if not (target / "model.safetensors").is_file():
            self.console.print(f"building a random {BERT_BASE.name} into {target}")
        return build_random_bert(target, tokenizer_dir, BERT_BASE, seed=0)

    # -- one shape -------------------------------------------------------------------------

    def _run_shape(self, shape: str, model_dir: Path, workload: Workload) -> None:
        options = self.options
        sample_texts = workload.texts[: options.sample_docs]
        # The BERT-base shape costs ~100x a token: try settings on fewer texts.
        tune_docs = options.tune_docs if shape == "tiny" else min(options.tune_docs, max(8, workload.docs // 8))
        env = {"OMP_NUM_THREADS": str(options.threads)}
        # elserve's own processes as its server starts them: malloc on huge pages (runtime/heap.py).
        own_env = {**env, heap.TUNABLES_ENV: heap.huge_pages_tunables(os.environ.get(heap.TUNABLES_ENV))}

        def job(settings: tuple[int, ...]) -> MeasureJob:
            return MeasureJob(
                workload,
                settings,
                tune_docs,
                options.latency_requests_for(shape),
                sample_texts,
                options.row_seconds_for(shape),
            )

        rows: list[RunnerResult] = []
        with self._progress() as bars:
            if options.inprocess:
                offered = [p for p in precisions() if options.precisions is None or p in options.precisions]
                for precision in offered:
                    name = f"elserve {precision}"
                    in_job = InProcessJob(model_dir, options.threads, precision, job(options.token_budgets))
                    rows += self._isolated(bars, shape, name, "elserve", "budget", run_elserve, in_job, own_env)
                for precision in offered[1:]:
                    if any(r.name == f"elserve {precision}" for r in rows):  # not refused here
                        self._fidelity(shape, model_dir, workload, precision, own_env)
            if options.peers:
                rows += self._peers(bars, shape, model_dir, job, env)
            if options.http:
                # Imported here: the HTTP rows need httpx (the `bench` extra).
                from elserve.bench.http_rows import HttpRows

                http = HttpRows(options, self.log_dir, self._on_progress, self._failed)
                rows += http.run(bars, shape, model_dir, workload, sample_texts)
                if options.url is None and any(r.name == "elserve int8" for r in rows):
                    rows += http.run(bars, shape, model_dir, workload, sample_texts, "int8")
        self._agreements(rows, model_dir, sample_texts)
        self.results += rows

    def _fidelity(self, shape: str, model_dir: Path, workload: Workload, precision: str, env: dict) -> None:
        """`precision`'s agreement with exact: passages' vectors and their top-10 ranking for
        held-out queries (a fifth of the texts, cut to their first words)."""
        texts = workload.texts[: self.options.sample_docs * 4]
        job = FidelityJob(model_dir, self.options.threads, precision, texts, max(1, len(texts) // 5))
        log = self.log_dir / f"{shape}-fidelity-{precision}.log"
        try:
            found = run_isolated(run_fidelity, job, log, env=env)
        except RunnerFailed as e:
            if REFUSED not in str(e):
                self.failures.append({"shape": shape, "runner": f"fidelity {precision}", "error": str(e)})
            return
        self.fidelity[f"{shape} {precision}"] = found
        p = found["passages"]
        self.console.print(
            f"{shape} {precision} vs exact: top-{p['top_k']} overlap {p['overlap_mean']:.3f} (lowest "
            f"{p['overlap_min']:.2f}), largest weight error {p['max_abs_diff']:.3g}, top-{found['rank_k']} "
            f"ranking agreement {found['ranking_mean']:.3f} (lowest {found['ranking_min']:.2f}) over "
            f"{found['queries']} held-out queries"
        )

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )

    def _isolated(
        self,
        bars: Progress,
        shape: str,
        name: str,
        group: str,
        setting_name: str,
        target: Callable[[Any, Any], Measured],
        job: Any,
        env: dict[str, str],
    ) -> list[RunnerResult]:
        task = bars.add_task(f"{shape} {name}: starting", total=None)
        log = self.log_dir / f"{shape}-{name.replace(' ', '-')}.log"
        try:
            measured = run_isolated(target, job, log, self._on_progress(bars, task, f"{shape} {name}"), env)
        except RunnerFailed as e:
            return self._failed(bars, task, shape, name, e)
        bars.update(task, description=f"{shape} {name}: {measured.best.tokens_per_s:,.0f} tokens/s")
        return [
            RunnerResult(
                name=name,
                group=group,
                shape=shape,
                setting_name=setting_name,
                best=measured.best,
                tuning=measured.tuning,
                latency=measured.latency,
                peak_rss_bytes=measured.peak_rss_bytes,
                sample=measured.sample,
                load_after=os.getloadavg()[0],
                kernels=measured.kernels,
            )
        ]

    def _peers(
        self, bars: Progress, shape: str, model_dir: Path, job: Callable[[tuple[int, ...]], MeasureJob], env: dict
    ) -> list[RunnerResult]:
        missing = missing_peer_libraries()
        if missing:
            self.console.print(f"[yellow]peers skipped: {', '.join(missing)} missing (the `bench` extra)")
            return []
        env = {**env, **OFFLINE_ENV}
        opts = self.options
        window = Tokenizer.from_dir(model_dir).max_length
        st_job = PeerJob(model_dir, opts.threads, window, job(opts.st_batch_sizes))
        st = run_sentence_transformers
        rows = self._isolated(bars, shape, "sentence-transformers", "peer", "batch", st, st_job, env)
        onnx_path = onnx_path_for(model_dir, self.work_dir / "onnx")
        task = bars.add_task(f"{shape} onnx export: {onnx_path.name}", total=None)
        try:
            run_isolated(run_export, (model_dir, onnx_path), self.log_dir / f"{shape}-onnx-export.log", env=env)
        except RunnerFailed as e:
            return rows + self._failed(bars, task, shape, "onnxruntime", e)
        bars.update(task, description=f"{shape} onnx export: {onnx_path}", total=1, completed=1)
        ort_job = PeerJob(model_dir, opts.threads, window, job(opts.ort_batch_sizes), onnx_path)
        rows += self._isolated(bars, shape, "onnxruntime", "peer", "batch", run_onnxruntime, ort_job, env)
        # The fair approximate peer of `elserve int8`: ONNX Runtime's own dynamic int8 quantization
        # of the same export.
        int8_path = onnx_path.with_name(onnx_path.stem + "-int8.onnx")
        try:
            run_isolated(quantize_export, (onnx_path, int8_path), self.log_dir / f"{shape}-onnx-int8.log", env=env)
        except RunnerFailed as e:
            return rows + self._failed(bars, task, shape, "onnxruntime int8", e)
        int8_job = PeerJob(model_dir, opts.threads, window, job(opts.ort_batch_sizes), int8_path)
        # Its own group: "x best peer" compares with the best exact peer.
        return rows + self._isolated(
            bars, shape, "onnxruntime int8", "approximate peer", "batch", run_onnxruntime, int8_job, env
        )

    def _on_progress(self, bars: Progress, task: TaskID, label: str) -> Callable[[str, int, int], None]:
        def update(phase: str, done: int, total: int) -> None:
            bars.update(task, description=f"{label}: {phase}", completed=done, total=total)

        return update

    def _failed(self, bars: Progress, task: TaskID, shape: str, name: str, error: Exception) -> list[RunnerResult]:
        if REFUSED in str(error):  # an opt-in precision this CPU runs no faster than exact: not a failure
            bars.update(task, description=f"[yellow]{shape} {name}: refused here (see the log)")
            self.refusals.append({"shape": shape, "runner": name, "reason": str(error)})
            return []
        bars.update(task, description=f"[red]{shape} {name}: failed")
        self.failures.append({"shape": shape, "runner": name, "error": str(error)})
        return []

    # -- agreement -------------------------------------------------------------------------

    def _agreements(self, rows: list[RunnerResult], model_dir: Path, sample_texts: list[str]) -> None:
        if not sample_texts or not rows:
            return
        reference = next((r.sample for r in rows if r.name == REFERENCE), None)
        if reference is None:
            encoder = Encoder.load(model_dir, num_threads=self.options.threads)
            assert isinstance(encoder, Encoder)  # a SPLADE model's directory, not TorchScript
            reference = [
                dict(zip(v.indices.tolist(), v.weights.tolist(), strict=True)) for v, _ in encoder.encode(sample_texts)
            ]
        vocab: list[str] | None = None
        for row in rows:
            if row.name == REFERENCE or not row.sample:
                continue
            sample = row.sample
            if row.group == "http":  # {token: weight}, as the API renders vectors
                vocab = vocab or Tokenizer.from_dir(model_dir).vocab
                sample = rows_by_id(sample, vocab)
            row.agreement = compare(reference, sample)
