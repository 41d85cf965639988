"""`sentence`: whole sentences gathered greedily up to `max_chunk_size` words.

Elasticsearch's `SentenceBoundaryChunker`:
- sentences (ICU's sentence iterator) join the chunk while its word count stays <= max;
- with `sentence_overlap` 1, the next chunk starts with the previous sentence,
  cut to its last min(max / 2, 20) words when both would not fit;
- a sentence (with its overlap) longer than max is split by the word chunker,
  with overlap min(20, (max - 1) / 2), on that piece of text alone; the last
  split stays open and the following sentences join it;
- the last chunk runs to the end of the input; an input without words is one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

from elserve.chunking.chunker import ChunkOffset
from elserve.chunking.segmentation import WordIndex, sentence_ends
from elserve.chunking.settings import SentenceChunkingSettings
from elserve.chunking.text import Utf16Text
from elserve.chunking.word import word_chunk_positions


def max_words_in_overlap(max_words: int) -> int:
    return min(max_words // 2, 20)


def words_to_skip_in_previous_sentence(words_in_previous: int, max_words: int) -> int:
    return max(words_in_previous - max_words_in_overlap(max_words), 0)


def split_overlap(max_words: int) -> int:
    """The word overlap used to split a sentence longer than a chunk."""
    return min(20, (max_words - 1) // 2)


def sentence_chunks(text: Utf16Text, max_words: int, include_previous_sentence: bool) -> list[ChunkOffset]:
    words = WordIndex(text)
    chunks: list[ChunkOffset] = []
    chunk_start = chunk_end = sentence_start = 0
    chunk_words = 0
    previous_words = previous_start = 0

    for sentence_end in sentence_ends(text):
        sentence_words = words.count_words(sentence_start, sentence_end)
        if chunk_words + sentence_words > max_words:
            next_chunk_words = sentence_words
            if chunk_words > 0:
                chunks.append(ChunkOffset(chunk_start, chunk_end))
                if include_previous_sentence:
                    if previous_words + sentence_words > max_words:
                        skip = words_to_skip_in_previous_sentence(previous_words, max_words)
                        chunk_start = words.skip_words(previous_start, skip)
                        chunk_words = previous_words - skip + sentence_words
                    else:
                        chunk_words = previous_words + sentence_words
                        chunk_start = previous_start
                    next_chunk_words = chunk_words
                else:
                    chunk_start = chunk_end
                    chunk_words = sentence_words
            if next_chunk_words > max_words:
                # Split this sentence (and its overlap) on word boundaries, as a text of its own.
                splits = word_chunk_positions(text.sub(chunk_start, sentence_end), max_words, split_overlap(max_words))
                for split in splits[:-1]:
                    chunks.append(ChunkOffset(chunk_start + split.offset.start, chunk_start + split.offset.end))
                last = splits[-1]
                chunk_start += last.offset.start
                chunk_words = last.word_count
        else:
            chunk_words += sentence_words

        if include_previous_sentence:
            previous_start = sentence_start
            previous_words = sentence_words
        sentence_start = sentence_end
        chunk_end = sentence_end

    if chunk_words > 0:
        chunks.append(ChunkOffset(chunk_start, text.length))
    if not chunks:
        chunks.append(ChunkOffset(0, text.length))
    return chunks


@dataclass(frozen=True)
class SentenceChunker:
    settings: SentenceChunkingSettings

    def chunk(self, text: Utf16Text) -> list[ChunkOffset]:
        return sentence_chunks(text, self.settings.max_chunk_size, self.settings.sentence_overlap > 0)
