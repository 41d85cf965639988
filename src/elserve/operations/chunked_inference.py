"""Chunked inference: each input chunked, every chunk embedded, results per input (elserve extension).

The shape is the one Elasticsearch's proposal answers (elastic/elasticsearch#125160):
`{"chunked_inference_service_result": [[chunk, ...], ...]}`, one list per input in
input order, each chunk `{"text", "text_offset": {"start", "end"}, "embedding",
"is_truncated"}`. Offsets are UTF-16 code units, as Elasticsearch's (Java
`String` offsets); `text` is that range of the input.

All chunks of a request go to the deployment as one request, so its batcher
cuts them into batches by tokens, as it does for any request with many inputs.
A chunk far longer than the model's window is sent as a prefix with the same
tokens (`model_window.py`), so that no chunk costs more than the window.
Past 512 chunks, neighbours share a result, merged as `EmbeddingRequestChunker` merges.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from elserve.chunking import ChunkOffset, Utf16Text, chunk, merged_offsets, result_slots
from elserve.chunking.settings import ChunkingSettings
from elserve.deployments.backend import ServedDeployment
from elserve.deployments.front import InferenceResult
from elserve.operations.model_window import model_window_text
from elserve.runtime import SparseVector, Tokenizer, TokenNames, to_token_weights

RESULT_FIELD = "chunked_inference_service_result"


@dataclass(frozen=True)
class ChunkedInput:
    text: Utf16Text
    chunks: list[ChunkOffset]  # what the chunker gave
    slots: list[int]  # each chunk's result slot (at most 512 slots)


def chunk_inputs(inputs: list[str], settings: ChunkingSettings) -> list[ChunkedInput]:
    chunked = []
    for value in inputs:
        text = Utf16Text(value)
        chunks = chunk(text, settings)
        chunked.append(ChunkedInput(text, chunks, result_slots(len(chunks))))
    return chunked


def _model_texts(chunked: list[ChunkedInput], tokenizer: Tokenizer) -> list[str]:
    """Every chunk's text, in order, as far as the model reads it."""
    return [model_window_text(item.text.slice(*offset), tokenizer) for item in chunked for offset in item.chunks]


def merge_vectors(vectors: list[SparseVector]) -> SparseVector:
    """`SparseEmbeddingResults.Embedding.merge`: every token of each, at its highest weight."""
    if len(vectors) == 1:
        return vectors[0]
    indices = np.concatenate([v.indices for v in vectors])
    weights = np.concatenate([v.weights for v in vectors])
    by_id_heaviest_first = np.lexsort((-weights, indices))
    indices, weights = indices[by_id_heaviest_first], weights[by_id_heaviest_first]
    first = np.ones(len(indices), dtype=bool)
    first[1:] = indices[1:] != indices[:-1]
    indices, weights = indices[first], weights[first]
    order = np.argsort(-weights, kind="stable")  # ids ascending among equal weights, as SparseVector keeps them
    return SparseVector(indices[order], weights[order])


async def infer_chunked(
    deployment: ServedDeployment,
    inputs: list[str],
    settings: ChunkingSettings,
    timeout: float | None,
    return_text: bool,
) -> list[list[dict[str, Any]]]:
    deadline = None if timeout is None else time.monotonic() + timeout
    assert deployment.tokenizer is not None
    tokenizer = deployment.tokenizer
    chunked = await asyncio.to_thread(chunk_inputs, inputs, settings)
    texts = await asyncio.to_thread(_model_texts, chunked, tokenizer)
    remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
    results = await deployment.infer(texts, remaining)
    del texts
    names = tokenizer.names
    rendered: list[list[dict[str, Any]]] = []
    position = 0
    for item in chunked:
        mine = results[position : position + len(item.chunks)]
        position += len(item.chunks)
        rendered.append(_render(item, mine, names, return_text))
    return rendered


def _render(
    item: ChunkedInput, results: list[InferenceResult], names: TokenNames, return_text: bool
) -> list[dict[str, Any]]:
    offsets = merged_offsets(item.chunks, item.slots)
    grouped: list[list[InferenceResult]] = [[] for _ in offsets]
    for slot, result in zip(item.slots, results, strict=True):
        grouped[slot].append(result)
    entries = []
    for offset, group in zip(offsets, grouped, strict=True):
        entry: dict[str, Any] = {}
        if return_text:
            entry["text"] = item.text.slice(*offset)
        entry["text_offset"] = {"start": offset.start, "end": offset.end}
        entry["embedding"] = to_token_weights(merge_vectors([r.vector for r in group]), names)
        entry["is_truncated"] = any(r.is_truncated for r in group)
        entries.append(entry)
    return entries
