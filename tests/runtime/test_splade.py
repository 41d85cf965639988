"""SPLADE pooling: blockwise max over real tokens equals the plain formula."""

from __future__ import annotations

import pytest
import torch

from elserve.runtime.splade import splade_pool


def _plain(rows: torch.Tensor, lengths: list[int], weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """max_i log(1 + relu(h_i . W_j + b_j)) per text, the full logits matrix written out."""
    logits = torch.log1p(torch.relu(rows @ weight.T + bias))
    return torch.stack([part.max(dim=0).values for part in logits.split(lengths)])


@pytest.mark.parametrize(("row_block", "vocab_block"), [(1, 1), (3, 7), (5, 64), (16, 1000), (1024, 2048)])
def test_blocks_do_not_change_the_result(row_block: int, vocab_block: int) -> None:
    g = torch.Generator().manual_seed(1)
    lengths = [1, 2, 9, 4, 17, 3, 1, 30]  # texts straddle row blocks of every size above
    rows = torch.randn(sum(lengths), 24, generator=g)
    weight = torch.randn(301, 24, generator=g) * 0.3  # odd vocabulary: no block divides it
    bias = torch.randn(301, generator=g) - 1.5
    got = splade_pool(rows, torch.tensor(lengths), weight, bias, row_block=row_block, vocab_block=vocab_block)
    want = _plain(rows, lengths, weight, bias)
    assert got.shape == (len(lengths), 301)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    # Zeros stay exact zeros: relu happens before log1p, on the same maxima.
    assert torch.equal(got > 0, want > 0)
    assert 0 < int((got > 0).sum()) < got.numel()


def test_no_token_contributes_below_zero() -> None:
    rows = torch.ones(3, 2)
    weight = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.0, 0.0]])
    bias = torch.tensor([0.0, 0.0, 0.0])
    got = splade_pool(rows, torch.tensor([3]), weight, bias)
    torch.testing.assert_close(got, torch.tensor([[torch.log1p(torch.tensor(2.0)), 0.0, 0.0]]))


def test_bias_is_added_once_per_entry() -> None:
    rows = torch.tensor([[1.0], [3.0], [-2.0]])
    weight = torch.tensor([[1.0], [-1.0]])
    bias = torch.tensor([-2.5, 2.5])
    got = splade_pool(rows, torch.tensor([2, 1]), weight, bias, row_block=1, vocab_block=1)
    # text 0: max(1, 3) - 2.5 = 0.5 and max(-1, -3) + 2.5 = 1.5; text 1: -4.5 -> 0 and 4.5.
    want = torch.log1p(torch.tensor([[0.5, 1.5], [0.0, 4.5]]))
    torch.testing.assert_close(got, want)


def test_empty_batch_and_bad_lengths() -> None:
    weight, bias = torch.zeros(5, 4), torch.zeros(5)
    assert splade_pool(torch.zeros(0, 4), torch.tensor([], dtype=torch.long), weight, bias).shape == (0, 5)
    with pytest.raises(ValueError, match="at least one token"):
        splade_pool(torch.zeros(2, 4), torch.tensor([2, 0]), weight, bias)
    with pytest.raises(ValueError, match="sum\\(lengths\\)"):
        splade_pool(torch.zeros(3, 4), torch.tensor([2]), weight, bias)
