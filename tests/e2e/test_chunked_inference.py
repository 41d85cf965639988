"""Chunked inference (`"chunk": true`, elserve's extension) and the T6 messages, against a real server.

The extension route goes through the official client's transport (`perform_request`):
the client has no typed method for it yet.
"""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch

from elserve.chunking import chunk, result_slots
from elserve.chunking.settings import WordChunkingSettings, parse_chunking_settings
from tests.chunking.documents import MULTILINGUAL, PROSE
from tests.support.elser import elser_config

HEADERS = {"accept": "application/json", "content-type": "application/json"}


def chunked(es: Elasticsearch, inference_id: str, body: dict[str, Any], **params: Any) -> Any:
    path = f"/_inference/sparse_embedding/{inference_id}"
    if params:
        path += "?" + "&".join(f"{k}={v}" for k, v in params.items())
    return es.perform_request("POST", path, headers=HEADERS, body=body).body


def plain(es: Elasticsearch, inference_id: str, texts: list[str]) -> list[dict[str, Any]]:
    return es.inference.sparse_embedding(inference_id=inference_id, input=texts)["sparse_embedding"]


def assert_close(got: dict[str, float], want: dict[str, float]) -> None:
    """Equal within float32 noise: a batch's padding changes the last bits (DESIGN: within 1e-4)."""
    for token in {*got, *want}:
        assert abs(got.get(token, 0.0) - want.get(token, 0.0)) <= 1e-4, token


def test_chunks_match_the_chunker_and_plain_inference(es: Elasticsearch, elser_endpoint: str) -> None:
    settings = {"strategy": "word", "max_chunk_size": 20, "overlap": 5}
    inputs = [PROSE, MULTILINGUAL[1], "short one 😀 here"]
    result = chunked(es, elser_endpoint, {"input": inputs, "chunk": True, "chunking_settings": settings})
    per_input = result["chunked_inference_service_result"]
    assert len(per_input) == len(inputs)
    for text, entries in zip(inputs, per_input, strict=True):
        expected = chunk(text, parse_chunking_settings(settings))
        assert [(e["text_offset"]["start"], e["text_offset"]["end"]) for e in entries] == expected
        texts = [e["text"] for e in entries]
        assert "".join(texts[:1]) == text[: len(texts[0])]
        # Each chunk's vector is exactly what the plain API gives for that text alone.
        for entry, alone in zip(entries, plain(es, elser_endpoint, texts), strict=True):
            assert_close(entry["embedding"], alone["embedding"])
        assert all(e["is_truncated"] is False for e in entries)
    # Offsets count UTF-16 units, as Elasticsearch's: the emoji counts 2.
    assert per_input[2][0]["text_offset"] == {"start": 0, "end": len("short one 😀 here") + 1}


def test_endpoint_settings_by_default_and_text_left_out(es: Elasticsearch, elser_endpoint: str) -> None:
    result = chunked(es, elser_endpoint, {"input": PROSE, "chunk": True, "return_text": False})
    (entries,) = result["chunked_inference_service_result"]
    assert [list(e) for e in entries] == [["text_offset", "embedding", "is_truncated"]]  # sentence/250: one chunk
    assert entries[0]["text_offset"] == {"start": 0, "end": len(PROSE)}


def test_without_chunk_the_api_still_truncates(es: Elasticsearch, elser_endpoint: str) -> None:
    long_text = "word " * 1000
    assert plain(es, elser_endpoint, [long_text])[0]["is_truncated"] is True
    # With `none`, the one chunk is over 512 word-pieces: it is marked, not silently cut.
    body = {"input": long_text, "chunk": True, "chunking_settings": {"strategy": "none"}}
    (entries,) = chunked(es, elser_endpoint, body)["chunked_inference_service_result"]
    assert len(entries) == 1 and entries[0]["is_truncated"] is True
    body["chunking_settings"] = {"strategy": "word", "max_chunk_size": 250, "overlap": 10}
    (entries,) = chunked(es, elser_endpoint, body)["chunked_inference_service_result"]
    assert len(entries) == 5 and not any(e["is_truncated"] for e in entries)


def test_more_than_512_chunks_are_merged(es: Elasticsearch, elser_endpoint: str) -> None:
    text = " ".join(f"w{i}" for i in range(4700))
    chunks = chunk(text, WordChunkingSettings(10, 1))  # a stride of 9 words
    assert len(chunks) == 1 + -(-(4700 - 10) // 9) == 523
    body = {
        "input": text,
        "chunk": True,
        "return_text": False,
        "chunking_settings": {"strategy": "word", "max_chunk_size": 10, "overlap": 1},
    }
    (entries,) = chunked(es, elser_endpoint, body, timeout="120s")["chunked_inference_service_result"]
    assert len(entries) == 512
    slots = result_slots(523)
    doubled = next(s for s in range(512) if slots.count(s) == 2)
    first, second = (chunks[i] for i in range(523) if slots[i] == doubled)
    assert entries[doubled]["text_offset"] == {"start": first.start, "end": second.end}
    # Token union, the higher weight kept.
    a, b = plain(es, elser_endpoint, [text[first.start : first.end], text[second.start : second.end]])
    union = {t: max(a["embedding"].get(t, 0), b["embedding"].get(t, 0)) for t in {*a["embedding"], *b["embedding"]}}
    assert_close(entries[doubled]["embedding"], union)
    weights = list(entries[doubled]["embedding"].values())
    assert weights == sorted(weights, reverse=True)


@pytest.mark.parametrize(
    ("body", "error_type", "reason"),
    [
        (
            {"input": "x", "chunking_settings": {"strategy": "none"}},
            "action_request_validation_exception",
            "Validation Failed: 1: Field [chunking_settings] can only be specified when [chunk] is true;",
        ),
        (
            {"input": "x", "chunk": True, "chunking_settings": {"strategy": "sentence", "max_chunk_size": 301}},
            "illegal_argument_exception",
            "ELSER based models do not support chunk sizes larger than 300. Requested chunk size: 301",
        ),
        (
            {
                "input": "x",
                "chunk": True,
                "chunking_settings": {"strategy": "recursive", "max_chunk_size": 20, "separators": ["(unclosed"]},
            },
            "validation_exception",
            "Validation Failed: 1: [chunking_settings] Invalid value [(unclosed]. [separators] must be valid "
            "regular expressions: missing ) at position 9;",
        ),
        (
            {"input": "x", "chunk": True, "chunking_settings": {"max_chunk_size": 20}},
            "illegal_argument_exception",
            "Can't generate Chunker without ChunkingStrategy provided",
        ),
        (
            {"input": "x", "chunk": "maybe"},
            "x_content_parse_exception",
            "[1:22] [cluster:internal/xpack/inference] failed to parse field [chunk]",
        ),
    ],
)
def test_bad_chunk_requests(es: Elasticsearch, elser_endpoint: str, body: dict, error_type: str, reason: str) -> None:
    with pytest.raises(BadRequestError) as raised:
        chunked(es, elser_endpoint, body)
    error = raised.value.body["error"]
    assert (error["type"], error["reason"]) == (error_type, reason)
    assert raised.value.body["status"] == 400


def test_a_catastrophic_separator_is_a_400(es: Elasticsearch, elser_endpoint: str) -> None:
    body = {
        "input": "x" * 5_000 + "!" + " word" * 30,
        "chunk": True,
        "chunking_settings": {"strategy": "recursive", "max_chunk_size": 10, "separators": ["(x+x+)+y"]},
    }
    with pytest.raises(BadRequestError) as raised:
        chunked(es, elser_endpoint, body)
    assert raised.value.body["error"]["reason"].startswith(
        "Chunk separator regex [(x+x+)+y] has exceeded the time limit"
    )


# --- T6 through inference.put ----------------------------------------------------------------------


def put(es: Elasticsearch, chunking_settings: dict[str, Any]) -> Any:
    return es.inference.put(
        task_type="sparse_embedding",
        inference_id="e2e-chunking-t6",
        inference_config=elser_config(chunking_settings=chunking_settings),
    )


T6 = [
    (
        {"strategy": "word", "max_chunk_size": 20, "overlap": 5, "extra": 1},
        "validation_exception",
        "Validation Failed: 1: Word based chunking settings can not have the following settings: [extra];",
    ),
    (
        {"strategy": "sentence"},
        "validation_exception",
        "Validation Failed: 1: [chunking_settings] does not contain the required setting [max_chunk_size];",
    ),
    (
        {"strategy": "word", "max_chunk_size": 0, "overlap": 1},
        "validation_exception",
        "Validation Failed: 1: [chunking_settings] Invalid value [0]. [max_chunk_size] must be a positive integer;",
    ),
    (
        {"strategy": "word", "max_chunk_size": 5, "overlap": 1},
        "validation_exception",
        "Validation Failed: 1: [chunking_settings] Invalid value [5.0]. [max_chunk_size] must be greater than or "
        "equal to [10.0];",
    ),
    (
        {"strategy": "word", "max_chunk_size": 100},
        "validation_exception",
        "Validation Failed: 1: [chunking_settings] does not contain the required setting [overlap];",
    ),
    (
        {"strategy": "word", "max_chunk_size": 100, "overlap": 60},
        "validation_exception",
        "Validation Failed: 1: [chunking_settings] Invalid value [60.0]. [overlap] must be less than or equal to "
        "[50.0];",
    ),
    (
        {"strategy": "sentence", "max_chunk_size": 100, "sentence_overlap": 2},
        "validation_exception",
        "Validation Failed: 1: sentence_overlap[2] must be either 0 or 1;",
    ),
    (
        {"strategy": "recursive", "max_chunk_size": 100, "separator_group": "x"},
        "validation_exception",
        "Validation Failed: 1: [chunking_settings] Invalid value [x] received. [separator_group] must be one of "
        "[markdown, plaintext];",
    ),
    (
        {"strategy": "recursive", "max_chunk_size": 100, "separator_group": "markdown", "separators": ["a"]},
        "validation_exception",
        "Validation Failed: 1: Recursive chunking settings can not have both separators and separator_set;",
    ),
    (
        {"strategy": "recursive", "max_chunk_size": 100, "separators": []},
        "validation_exception",
        "Validation Failed: 1: Recursive chunking settings can not have an empty list of separators;",
    ),
    (
        {"strategy": "recursive", "max_chunk_size": 100, "separators": ["a"] * 51},
        "validation_exception",
        "Validation Failed: 1: separators list size [51] must not exceed [50];",
    ),
    (
        {"strategy": "sentence", "max_chunk_size": 301},
        "illegal_argument_exception",
        "ELSER based models do not support chunk sizes larger than 300. Requested chunk size: 301",
    ),
    ({"strategy": "paragraph"}, "illegal_argument_exception", "Invalid chunkingStrategy paragraph"),
]


@pytest.mark.parametrize(("chunking_settings", "error_type", "reason"), T6)
def test_t6_messages_through_inference_put(
    es: Elasticsearch, chunking_settings: dict, error_type: str, reason: str
) -> None:
    with pytest.raises(BadRequestError) as raised:
        put(es, chunking_settings)
    error = raised.value.body["error"]
    assert (error["type"], error["reason"]) == (error_type, reason)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("document", "strategy"),
    [
        (".,;:!?()" * 625_000, {"strategy": "sentence", "max_chunk_size": 250, "sentence_overlap": 1}),
        ("😀🎉" * 1_250_000, {"strategy": "none"}),
        ("abcdefghij" * 500_000, {"strategy": "recursive", "max_chunk_size": 100, "separator_group": "markdown"}),
    ],
    ids=["punctuation", "emoji", "no_whitespace"],
)
def test_five_megabyte_documents_without_words(
    es: Elasticsearch, elser_endpoint: str, document: str, strategy: dict
) -> None:
    body = {"input": document, "chunk": True, "return_text": False, "chunking_settings": strategy}
    (entries,) = chunked(es, elser_endpoint, body, timeout="120s")["chunked_inference_service_result"]
    length = len(document.encode("utf-16-le")) // 2
    assert [e["text_offset"] for e in entries] == [{"start": 0, "end": length}]
