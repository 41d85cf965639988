"""How the runtime times the kernels it chooses between at load: its samples, its clock, its choice."""

from __future__ import annotations

import pytest
import torch

from elserve.runtime.timing import first_within, one_thread_seconds, sample_batch


@pytest.mark.parametrize("scored", [30_522, 1_500, 64])
def test_a_sample_is_packed_texts_of_the_models_own_ids_past_its_special_ones(scored: int) -> None:
    ids, lengths = sample_batch(scored, 3, 16)
    assert ids.dtype == torch.long and ids.shape == (48,)
    assert lengths.tolist() == [16, 16, 16]
    assert int(ids.min()) >= min(1000, scored // 2) and int(ids.max()) < scored
    assert torch.equal(sample_batch(scored, 3, 16)[0], ids)  # the same on every call
    assert len(set(ids.tolist())) > 16  # random ids, not one repeated


def test_a_kernel_is_timed_on_one_thread_and_threads_are_given_back() -> None:
    threads = torch.get_num_threads()
    seen: list[int] = []
    seconds = one_thread_seconds(lambda: seen.append(torch.get_num_threads()), runs=2)
    assert seen == [1, 1, 1]  # one run to warm, then the runs timed
    assert 0 <= seconds < 1 and torch.get_num_threads() == threads


def test_a_later_option_wins_only_by_more_than_the_margin() -> None:
    assert first_within({"first": 1.1, "second": 1.0}, 1.15) == "first"
    assert first_within({"first": 1.2, "second": 1.0}, 1.15) == "second"
