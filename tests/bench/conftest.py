"""Fixtures of the benchmark harness tests: a few real passages and the real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from elserve.bench.corpus import Workload

PASSAGES = [
    "What is ELSER? A learned sparse encoder that expands text into weighted vocabulary tokens.",
    "Directory tree generator. For each directory in the tree rooted at top, yields a 3-tuple.",
    "The quick brown fox jumps over the lazy dog.",
    "Elasticsearch exposes the inference API under the _inference path.",
    "dpkg option --force-auto-select has been removed; it was a no-op for a long time.",
    "short",
    "Sparse vectors keep only the tokens with a positive weight, highest first.",
    "A passage that is a little longer than the others, " * 6,
    "Token budgets cut batches by the padded cost: the longest text times the number of texts.",
    "ONNX Runtime runs the exported graph with two intra-op threads.",
    "sentence-transformers builds a SparseEncoder from a masked-LM and SPLADE pooling.",
    "Peak resident memory is read from /proc/self/status (VmHWM).",
    "Latency of one short text tells whether batching protects small requests.",
    "The model's tokenizer counts [CLS] and [SEP], and cuts texts at 512 tokens.",
    "Two allocations of one thread each, or one allocation of two threads.",
    "Every runner sees the same texts, so the rows of one run compare directly.",
    "Random weights of BERT-base size show how cost scales with the model.",
    "Über naïve café: accents and unicode go through the same normaliser.",
    "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
    "the end.",
]


@pytest.fixture(scope="session")
def workload(splade_model_dir: Path) -> Workload:
    return Workload.count(PASSAGES, splade_model_dir)
