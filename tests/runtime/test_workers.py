"""The single-threaded torch workers that split a big batch."""

from __future__ import annotations

import pytest
import torch

from elserve.runtime.workers import Workers


def test_map_keeps_order_and_inference_mode() -> None:
    workers = Workers(2)
    try:
        assert workers.map(lambda x: x * x, [1, 2, 3, 4, 5]) == [1, 4, 9, 16, 25]
        with torch.inference_mode():
            assert workers.map(lambda _: torch.is_inference_mode_enabled(), [0, 1]) == [True, True]
        assert workers.map(lambda _: torch.is_inference_mode_enabled(), [0, 1]) == [False, False]
    finally:
        workers.close()


def test_workers_run_torch_single_threaded_and_leave_the_caller_alone() -> None:
    before = torch.get_num_threads()
    workers = Workers(2)
    try:
        assert workers.map(lambda _: torch.get_num_threads(), [0, 1]) == [1, 1]
        # A single item runs on a worker too.
        assert workers.map(lambda _: torch.get_num_threads(), [0]) == [1]
        assert torch.get_num_threads() == before
    finally:
        workers.close()


def test_errors_reach_the_caller() -> None:
    workers = Workers(2)

    def fail(x: int) -> int:
        if x == 1:
            raise RuntimeError("boom")
        return x

    try:
        with pytest.raises(RuntimeError, match="boom"):
            workers.map(fail, [0, 1])
    finally:
        workers.close()


def test_one_worker_runs_inline() -> None:
    assert Workers(1).map(lambda _: torch.get_num_threads(), [0]) == [torch.get_num_threads()]
    with pytest.raises(ValueError, match="at least 1"):
        Workers(0)
