"""The model's WordPiece tokenizer: text to token ids, truncated at the model's window.

Read from `tokenizer.json`, or built from a bare vocabulary: `vocab.txt` (Hugging Face checkpoints
without a `tokenizer.json`) or Elastic's `vocab.json` with the configuration's `bert` tokenization
(`elastic_config.py`), as BERT's basic + WordPiece tokenizers (and Elasticsearch's) split text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import tokenizers
from tokenizers import models, normalizers, pre_tokenizers, processors

from elserve.runtime import elastic_config, layout
from elserve.runtime.config import ModelFormatError, read_config
from elserve.runtime.sparse import TokenNames

# [CLS] and [SEP], repeated in each overflow piece.
_SPECIALS = 2
# The most word-pieces one cut word can change (BERT's `max_input_chars_per_word` is 100).
_CUT_WORD_PIECES = 101
# Texts handed to the library at once: enough for its threads, few enough to bound its encodings' memory.
_ENCODE_SLICE = 256


@dataclass(frozen=True, slots=True, eq=False)
class Encoded:
    """One text's token ids ([CLS] ... [SEP] included) and whether tokens were cut off."""

    ids: np.ndarray  # int32, shape (length,)
    is_truncated: bool


class Tokenizer:
    """A `tokenizers` tokenizer set up for inference: no padding, truncation at `max_length`."""

    def __init__(self, inner: tokenizers.Tokenizer, max_length: int) -> None:
        if max_length < 2:
            raise ValueError(f"max_length must leave room for [CLS] and [SEP], got [{max_length}]")
        self._inner = inner
        self.max_length = max_length
        # Padding is the encoder's job (to the longest of each batch); tokenizer.json files often
        # carry a padding setting from training that would pad every text of a batch.
        inner.no_padding()
        # Cut at the end, as Elasticsearch does; stride 0 so overflow pieces exist only when
        # tokens were actually dropped, which makes `is_truncated` a length check.
        inner.enable_truncation(max_length, stride=0, strategy="longest_first", direction="right")
        vocab = inner.get_vocab(with_added_tokens=True)
        size = max(vocab.values(), default=-1) + 1
        table = [""] * size
        for token, token_id in vocab.items():
            table[token_id] = token
        self.vocab: list[str] = table

    @property
    def pad_id(self) -> int:
        """The id a padded batch is filled with: `[PAD]`'s, else 0."""
        return self.vocab.index("[PAD]") if "[PAD]" in self.vocab else 0

    @cached_property
    def names(self) -> TokenNames:
        """The vocabulary as results name it (built when first asked: the server renders, workers do not)."""
        return TokenNames(self.vocab)

    @classmethod
    def from_dir(cls, model_dir: Path) -> Tokenizer:
        """The tokenizer of a model directory of either layout (`layout.py`).

        Hugging Face: `tokenizer.json`, else `vocab.txt` (lower-cased unless `tokenizer_config.json`
        says `do_lower_case: false`); the window is the smallest of the model's positions and the
        tokenizer's `model_max_length` (when `tokenizer_config.json` states a real one).
        Elastic: `vocab.json` with the configuration's `bert` tokenization (`do_lower_case`,
        `with_special_tokens`, `max_sequence_length`).
        """
        if layout.layout_of(model_dir) == layout.ELASTIC:
            settings = elastic_config.read_tokenization(model_dir)
            vocab = elastic_config.read_vocabulary(model_dir)
            inner = wordpiece(vocab, settings.do_lower_case, settings.with_special_tokens)
            return cls(inner, max_length=settings.max_sequence_length)
        path = model_dir / layout.HF_TOKENIZER
        if path.exists():
            inner = tokenizers.Tokenizer.from_file(str(path))
        else:
            inner = wordpiece(_read_vocab_txt(model_dir / layout.HF_VOCAB), _hf_lower_case(model_dir), True)
        return cls(inner, max_length=read_max_length(model_dir))

    def encode_batch(self, texts: list[str]) -> list[Encoded]:
        """Token ids of each text, in order, unpadded.

        A long text is tokenized only as far as its window needs (`_encode_long`): a 5 MB input
        costs what a few kilobytes do, and its memory is not the overflow of a million tokens.
        """
        limit = self._prefix_chars
        if all(len(t) <= limit for t in texts):
            return self._encode(texts)
        return [self._encode_long(t) if len(t) > limit else self._encode([t])[0] for t in texts]

    def length(self, text: str) -> int:
        """The text's token count, [CLS] and [SEP] included, before any truncation (for `truncate: none`)."""
        encoding = self._inner.encode(text, add_special_tokens=True)
        return len(encoding.ids) + sum(len(o.ids) - _SPECIALS for o in encoding.overflowing)

    def _encode(self, texts: list[str]) -> list[Encoded]:
        # The fast batch API skips offsets, which inference never needs. In slices: a library encoding
        # holds tens of bytes per token beyond its ids (tokens, masks, overflow), so the thousands of
        # chunks of one long document would otherwise all hold them at once.
        encoded: list[Encoded] = []
        for start in range(0, len(texts), _ENCODE_SLICE):
            encodings = self._inner.encode_batch_fast(texts[start : start + _ENCODE_SLICE], add_special_tokens=True)
            encoded.extend(Encoded(np.asarray(e.ids, dtype=np.int32), len(e.overflowing) > 0) for e in encodings)
        return encoded

    @property
    def _prefix_chars(self) -> int:
        # Word-pieces are rarely under two characters; 16 per piece leaves room for whitespace.
        return self.max_length * 16

    def _encode_long(self, text: str) -> Encoded:
        """Tokenize growing prefixes until one holds the window plus a safety margin.

        Cutting a text changes at most the word-pieces of the word that was cut (BERT's
        pre-tokenizer splits on whitespace and punctuation, normalization is per character,
        and a word over 100 characters is one [UNK]), so once a prefix yields the window's
        pieces plus `_CUT_WORD_PIECES` more, its first `max_length` ids are the full text's.
        """
        size = self._prefix_chars
        while size < len(text):
            encoding = self._inner.encode(text[:size], add_special_tokens=True)
            pieces = len(encoding.ids) + sum(len(o.ids) - _SPECIALS for o in encoding.overflowing)
            if pieces >= self.max_length + _CUT_WORD_PIECES:
                return Encoded(np.asarray(encoding.ids, dtype=np.int32), True)
            size *= 4
        return self._encode([text])[0]


SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def wordpiece(vocab: list[str], lowercase: bool, with_special_tokens: bool) -> tokenizers.Tokenizer:
    """BERT's tokenizer over the id -> token list `vocab`: basic tokenization (clean-up, CJK
    characters apart, punctuation split; accents stripped when lower-casing, as BERT and
    Elasticsearch do), WordPiece with `##` pieces, `[CLS] ... [SEP]` around the text."""
    ids: dict[str, int] = {}
    for i, token in enumerate(vocab):
        ids.setdefault(token, i)  # a duplicated entry keeps its first id
    # `[CLS]` and `[SEP]` are needed only to wrap the text (`with_special_tokens`).
    required = ("[UNK]", "[CLS]", "[SEP]") if with_special_tokens else ("[UNK]",)
    missing = [t for t in required if t not in ids]
    if missing:
        raise ModelFormatError(f"the vocabulary lacks the BERT special tokens {missing}")
    inner = tokenizers.Tokenizer(models.WordPiece(vocab=ids, unk_token="[UNK]", max_input_chars_per_word=100))
    inner.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    inner.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    if with_special_tokens:
        inner.post_processor = processors.BertProcessing(("[SEP]", ids["[SEP]"]), ("[CLS]", ids["[CLS]"]))
    inner.add_special_tokens([t for t in SPECIAL_TOKENS if t in ids])
    return inner


def _read_vocab_txt(path: Path) -> list[str]:
    # One token a line, the line number its id (BERT's `vocab.txt`).
    return path.read_text(encoding="utf-8").rstrip("\n").split("\n")


def _hf_lower_case(model_dir: Path) -> bool:
    """`do_lower_case` of `tokenizer_config.json`; True without one, as transformers' BertTokenizer."""
    path = model_dir / layout.HF_TOKENIZER_CONFIG
    if path.exists():
        value = json.loads(path.read_text(encoding="utf-8")).get("do_lower_case")
        if isinstance(value, bool):
            return value
    return True


def read_max_length(model_dir: Path) -> int:
    """The model's window in word-pieces, specials included."""
    limit = read_config(model_dir).max_position_embeddings
    tokenizer_config = model_dir / "tokenizer_config.json"
    if tokenizer_config.exists():
        declared = json.loads(tokenizer_config.read_text(encoding="utf-8")).get("model_max_length")
        # transformers writes a huge sentinel (int(1e30)) when the tokenizer sets no limit.
        if isinstance(declared, int) and 0 < declared < limit:
            limit = declared
    return limit
