"""`elserve bench` itself on a few texts: the rows, the table and the JSON file."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from rich.console import Console

from elserve.bench.options import BenchOptions
from elserve.bench.session import BenchSession
from tests.bench.conftest import PASSAGES


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in PASSAGES) + "\n")
    return path


def small_options(corpus: Path, tmp_path: Path, model_dir: Path, **overrides: object) -> BenchOptions:
    settings: dict = {
        "corpus": corpus,
        "model_dir": model_dir,
        "data_dir": tmp_path / "data",
        "output": tmp_path / "out" / "result.json",
        "tune_docs": 8,
        "latency_requests": 5,
        "sample_docs": 4,
        "token_budgets": (1024, 4096),
        "st_batch_sizes": (1, 4),
        "ort_batch_sizes": (1, 4),
        "clients": 3,
        "docs_per_request": 4,
        "allocations": ("1x1",),
        "model_shape": "tiny",
        "tiny_row_seconds": 0.5,
    }
    settings.update(overrides)
    return BenchOptions(**settings)


def run(options: BenchOptions) -> tuple[int, dict, str]:
    console = Console(record=True, width=200)
    code = BenchSession(options, console).run()
    return code, json.loads(options.output.read_text()), console.export_text()


def test_in_process_run_writes_the_table_and_the_file(corpus: Path, tmp_path: Path, splade_model_dir: Path) -> None:
    code, document, printed = run(small_options(corpus, tmp_path, splade_model_dir, peers=False, http=False))
    assert code == 0
    [row] = [r for r in document["results"] if r["name"] == "elserve exact"]
    # Whole passes over the corpus, for at least the row's seconds.
    passes = row["best"]["docs"] // len(PASSAGES)
    assert passes >= 1 and row["best"]["docs"] == passes * len(PASSAGES) and row["best"]["seconds"] >= 0.5
    assert row["best"]["tokens"] == passes * document["workloads"]["tiny"]["tokens"]
    assert row["best"]["tokens_per_s"] > 0 and row["peak_rss_bytes"] > 0
    assert [t["setting"] for t in row["tuning"]] == [1024, 4096]
    assert row["ratio_to_best_peer"] is None
    assert document["machine"]["cpu_model"] and document["machine"]["versions"]["torch"]
    assert "elserve exact" in printed and "reference" in printed


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="--model-shape must be one of tiny, base, both"):
        BenchOptions(model_shape="large")
    with pytest.raises(ValueError, match="--url needs --password"):
        BenchOptions(url="http://127.0.0.1:9200")
    assert BenchOptions(model_shape="both").shapes == ["base", "tiny"]  # ELSER's size leads


@pytest.mark.slow
def test_every_runner_on_twenty_texts(corpus: Path, tmp_path: Path, splade_model_dir: Path) -> None:
    """Peers, in-process and a real `elserve serve` over HTTP, as `make bench` runs them."""
    peers = all(importlib.util.find_spec(m) for m in ("sentence_transformers", "onnxruntime", "onnx"))
    code, document, printed = run(small_options(corpus, tmp_path, splade_model_dir, peers=peers))
    assert code == 0, document["failures"]
    rows = {r["name"]: r for r in document["results"]}
    expected = {"elserve exact", "elserve http 1x1"} | ({"sentence-transformers", "onnxruntime"} if peers else set())
    assert expected <= set(rows)
    for name in expected - {"elserve exact"}:
        assert rows[name]["agreement"]["max_abs_diff"] < 1e-4, name
        assert rows[name]["agreement"]["overlap_min"] == 1.0, name
    http = rows["elserve http 1x1"]
    assert http["best"]["docs"] >= len(PASSAGES) and http["latency"]["count"] == 5
    assert http["peak_rss_bytes"] > 0
    # The mixed pass reuses the row's idle latency and bulk-alone pass, and charges the queries' CPU.
    mixed = http["mixed"]
    alone, row = mixed["bulk_alone"], http["best"]
    assert mixed["idle"] == http["latency"] and (alone["tokens"], alone["seconds"]) == (row["tokens"], row["seconds"])
    assert mixed["bulk_with_queries"]["docs"] >= len(PASSAGES) and mixed["query_cpu_share"] is not None
    assert "queries' CPU" in printed and "x in-" in printed
    roles = [w["role"] for w in http["workers_memory"]]  # read from /proc after the load
    assert roles.count("model parent") == 1 and roles.count("allocation") == 1
    assert "first allocation" in printed
    if peers:
        assert rows["elserve exact"]["ratio_to_best_peer"] > 0
        assert "x best" in printed
