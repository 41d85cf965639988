"""SPLADE max pooling over the vocabulary head, without materialising the logits.

SPLADE's weight of vocabulary entry j for a text is `max_i log(1 + relu(logit_ij))` over the
text's tokens i ([CLS] and [SEP] included), with `logit_ij = h_i . W_j + b_j`. `log1p(relu(.))`
is monotone and adding `b_j` is monotone even after rounding, so the same vector is
`log1p(relu(max_i (h_i . W_j) + b_j))`: the max runs on raw products and the bias, relu and
log1p run once per vocabulary entry instead of once per (token, entry).

The products are computed block by block (a slab of token rows against a slab of vocabulary
rows) into one reused buffer that stays in cache, and each block is folded into the running
per-text maximum at once: the full `tokens x vocab` matrix is never written.

This is the plain head, in the dtype of its inputs (fp32, or bf16 for an approximate head); the
encoder runs the screened head of `screening.py`, whose weights are exact, and this one serves
as its reference.
"""

from __future__ import annotations

import warnings

import torch

# Tuned on a 2-core AMD EPYC (1 MiB L2 per core) with the 30,522-entry BERT vocabulary: a
# 1024 x 2048 fp32 block (8 MiB) keeps the GEMM at its peak and makes the max cheap to fold.
ROW_BLOCK = 1024
VOCAB_BLOCK = 2048


def splade_pool(
    rows: torch.Tensor,
    lengths: torch.Tensor,
    decoder_weight: torch.Tensor,
    decoder_bias: torch.Tensor,
    *,
    row_block: int = ROW_BLOCK,
    vocab_block: int = VOCAB_BLOCK,
) -> torch.Tensor:
    """SPLADE weights `(texts, vocab)` from the head-transformed states of real tokens.

    `rows` is `(sum(lengths), hidden)`: the tokens of text 0, then of text 1, ... (no padding);
    `lengths` holds each text's token count (each at least 1).
    """
    if lengths.numel() == 0:
        return torch.empty(0, decoder_weight.shape[0], dtype=torch.float32)
    if bool((lengths < 1).any()) or int(lengths.sum()) != rows.shape[0]:
        raise ValueError("every text needs at least one token and rows must hold exactly sum(lengths) tokens")
    texts, vocab = lengths.numel(), decoder_weight.shape[0]
    text_of_row = torch.repeat_interleave(torch.arange(texts), lengths)
    best = torch.full((texts, vocab), float("-inf"), dtype=rows.dtype)
    buffer = torch.empty(min(row_block, rows.shape[0]) * min(vocab_block, vocab), dtype=rows.dtype)
    with warnings.catch_warnings():
        # index_reduce_ is flagged "beta" but has been stable since torch 2.0; it is the one
        # vectorised segment-max that takes a 1-D index.
        warnings.filterwarnings("ignore", message="index_reduce", category=UserWarning)
        for v0 in range(0, vocab, vocab_block):
            weight = decoder_weight[v0 : v0 + vocab_block]
            best_block = best[:, v0 : v0 + weight.shape[0]]
            for r0 in range(0, rows.shape[0], row_block):
                chunk = rows[r0 : r0 + row_block]
                products = buffer[: chunk.shape[0] * weight.shape[0]].view(chunk.shape[0], weight.shape[0])
                torch.mm(chunk, weight.T, out=products)
                best_block.index_reduce_(0, text_of_row[r0 : r0 + row_block], products, "amax")
    # The tail in fp32 whatever the products' dtype (a no-op for fp32 inputs).
    best = best.float().add_(decoder_bias)
    return torch.log1p(torch.relu_(best))
