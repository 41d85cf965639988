from __future__ import annotations

import json
from pathlib import Path

import pytest

from elserve.bench.corpus import Workload, default_corpus_path, read_corpus
from elserve.runtime import Tokenizer


def test_jsonl_reads_the_text_field(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps({"id": i, "text": f"passage {i}"}) for i in range(5)) + "\n\n")
    assert read_corpus(path) == [f"passage {i}" for i in range(5)]
    assert read_corpus(path, limit=2) == ["passage 0", "passage 1"]


def test_plain_text_is_one_passage_a_line(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text('first line\n\n  second line  \n{"text": "kept as it is"}\n')
    assert read_corpus(path) == ["first line", "second line", '{"text": "kept as it is"}']


def test_a_json_line_without_text_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(ValueError, match=r"c.jsonl:2: a JSON line needs a string field \[text\]"):
        read_corpus(path)


def test_an_empty_corpus_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="no passages"):
        read_corpus(path)


def test_token_counts_include_the_specials_and_stop_at_the_window(splade_model_dir: Path) -> None:
    long_text = "word " * 2000
    workload = Workload.count(["hello", long_text], splade_model_dir)
    assert workload.token_counts == [3, Tokenizer.from_dir(splade_model_dir).max_length]
    assert workload.tokens == 3 + 512
    assert workload.docs == 2


def test_a_sample_spreads_over_the_corpus(workload: Workload) -> None:
    sample = workload.sample(5)
    assert sample.texts == [workload.texts[i] for i in (0, 4, 8, 12, 16)]
    assert sample.token_counts == [workload.token_counts[i] for i in (0, 4, 8, 12, 16)]
    assert workload.sample(100) is workload


def test_the_shared_corpus_is_found_beside_the_checkout() -> None:
    path = default_corpus_path()
    if path is None:
        pytest.skip("no ../shared/bench/corpus.jsonl beside this checkout")
    assert len(read_corpus(path, limit=3)) == 3
