"""The SPLADE encoder: token ids in, sparse vectors out (tokenize -> forward -> pool)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from elserve.runtime.bert import BertMaskedLM, load_bert
from elserve.runtime.config import ModelFormatError
from elserve.runtime.sparse import SparseVector, sparsify
from elserve.runtime.splade import splade_pool
from elserve.runtime.tokenizer import Encoded, Tokenizer

# Padded cost of one batch in `encode`, in tokens (longest text x texts).
DEFAULT_BATCH_TOKENS = 8192


class Encoder:
    """A BERT masked-LM with SPLADE max pooling, exact in fp32."""

    # The encoder layers run on a padded (texts, longest) batch, so a batch costs
    # longest x texts; the vocabulary head itself runs on real tokens only.
    is_padded = True

    def __init__(self, model: BertMaskedLM, tokenizer: Tokenizer) -> None:
        vocab_size = model.config.vocab_size
        if len(tokenizer.vocab) > vocab_size:
            raise ModelFormatError(
                f"the tokenizer has [{len(tokenizer.vocab)}] tokens but the model only [{vocab_size}]"
            )
        self.model = model
        self.tokenizer = tokenizer
        # Models whose embedding matrix is padded past the tokenizer's vocabulary get no weight
        # for those rows: no text maps to them and they have no token to be rendered as.
        self._scored = len(tokenizer.vocab)

    @classmethod
    def load(cls, model_dir: Path, num_threads: int | None = None) -> Encoder:
        """Load `model_dir`; `num_threads` sets torch's intra-op threads (process-wide)."""
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        return cls(load_bert(model_dir), Tokenizer.from_dir(model_dir))

    @property
    def vocab(self) -> list[str]:
        return self.tokenizer.vocab

    @property
    def max_length(self) -> int:
        return self.tokenizer.max_length

    def tokenize(self, texts: list[str]) -> list[Encoded]:
        return self.tokenizer.encode_batch(texts)

    def encode_ids(self, batch: list[np.ndarray]) -> list[SparseVector]:
        """The SPLADE vector of each token id sequence ([CLS]/[SEP] included), in order.

        The batch is padded to its longest sequence for the encoder layers, so batches of
        similar lengths waste least; the vocabulary head sees real tokens only.
        """
        if not batch:
            return []
        lengths = np.fromiter((len(ids) for ids in batch), dtype=np.int64, count=len(batch))
        limit = self.model.config.max_position_embeddings
        if lengths.min() < 1 or lengths.max() > limit:
            raise ValueError(
                f"every id sequence needs 1 to {limit} tokens, got lengths {lengths.min()}..{lengths.max()}"
            )
        longest = int(lengths.max())
        padded = np.full((len(batch), longest), self.model.config.pad_token_id, dtype=np.int64)
        for row, ids in zip(padded, batch, strict=True):
            row[: len(ids)] = ids
        lowest, highest = int(padded.min()), int(padded.max())
        if lowest < 0 or highest >= self.model.config.vocab_size:
            raise ValueError(f"token ids must be in [0, {self.model.config.vocab_size}), got {lowest}..{highest}")
        with torch.inference_mode():
            input_ids = torch.from_numpy(padded)
            lengths_t = torch.from_numpy(lengths)
            hidden = self.model.encode(input_ids, lengths_t)
            # Real tokens only, text after text: padding never reaches the head.
            real = torch.arange(longest) < lengths_t[:, None]
            rows = self.model.transform(hidden[real])
            weights = splade_pool(
                rows,
                lengths_t,
                self.model.decoder_weight[: self._scored],
                self.model.decoder_bias[: self._scored],
            )
        return [sparsify(dense) for dense in weights.numpy()]

    def encode(
        self, texts: list[str], max_batch_tokens: int = DEFAULT_BATCH_TOKENS
    ) -> list[tuple[SparseVector, bool]]:
        """Tokenize and encode `texts`: `(vector, is_truncated)` for each, in order.

        Texts are run in length-sorted batches of at most `max_batch_tokens` padded tokens.
        """
        encoded = self.tokenize(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i].ids))
        vectors: dict[int, SparseVector] = {}
        start = 0
        while start < len(order):
            # Sorted ascending, so the last text taken is the longest of the batch.
            end = start + 1
            while end < len(order) and len(encoded[order[end]].ids) * (end + 1 - start) <= max_batch_tokens:
                end += 1
            chunk = order[start:end]
            for i, vector in zip(chunk, self.encode_ids([encoded[i].ids for i in chunk]), strict=True):
                vectors[i] = vector
            start = end
        return [(vectors[i], e.is_truncated) for i, e in enumerate(encoded)]
