"""The queue's batching rules, without processes: budgets, turns, skipped callers, retries."""

from __future__ import annotations

import asyncio

import numpy as np

from elserve.deployments.queue import Admission, Entry, RequestQueue


def _entries(loop: asyncio.AbstractEventLoop, *sizes: int) -> list[Entry]:
    return [Entry(np.zeros(n, dtype=np.int32), loop.create_future()) for n in sizes]


def test_budget_turns_and_skips() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue = RequestQueue()
        bulk = _entries(loop, *([100] * 10))
        short = _entries(loop, 5)
        queue.push(bulk)
        queue.push(short)
        first = queue.take(max_tokens=300, max_size=64)
        # The short request rides in the first batch although the bulk one came first.
        assert short[0] in first
        assert sum(e.size for e in first) <= 300
        assert [e.size for e in first] == sorted(e.size for e in first)
        bulk[3].future.cancel()  # its caller went away
        taken = list(first)
        while len(queue):
            taken += queue.take(max_tokens=300, max_size=64)
        assert bulk[3] not in taken
        assert [e for e in taken if e in bulk] == [e for e in bulk if e is not bulk[3]]  # order kept

    asyncio.run(main())


def test_an_oversized_entry_still_runs_and_max_size_holds() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue = RequestQueue()
        queue.push(_entries(loop, 5000))
        assert [e.size for e in queue.take(max_tokens=100, max_size=8)] == [5000]
        queue.push(_entries(loop, *([1] * 20)))
        assert len(queue.take(max_tokens=1000, max_size=8)) == 8

    asyncio.run(main())


def test_retries_go_first() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue = RequestQueue()
        waiting = _entries(loop, 10, 10)
        retried = _entries(loop, 10)
        queue.push(waiting)
        queue.push_front(retried)
        batch = queue.take(max_tokens=10, max_size=8)
        assert batch == retried

    asyncio.run(main())


def test_admission_counts_and_idles() -> None:
    async def main() -> None:
        admission = Admission(2)
        assert admission.try_acquire() and admission.try_acquire()
        assert not admission.try_acquire()
        assert not admission.idle.is_set()
        admission.release()
        admission.release()
        assert admission.idle.is_set()

    asyncio.run(main())


def test_a_request_that_fits_its_turn_is_answered_by_one_batch() -> None:
    """Bulk clients each waiting for their answer: the first requests end with the first batch (and
    their clients send more), rather than every request ending with the last batch."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        queue = RequestQueue()
        requests = [_entries(loop, *([100] * 4)) for _ in range(5)]
        for request in requests:
            queue.push(request)
        first = queue.take(max_tokens=1000, max_size=64)
        assert sum(e.size for e in first) == 1000
        assert set(requests[0]) | set(requests[1]) <= set(first)  # whole
        assert len(set(requests[2]) & set(first)) == 2 and not set(requests[3]) & set(first)
        # A request longer than a turn (half the budget) lets the next one in after 500 tokens;
        # the room left after every turn goes to it again.
        long = _entries(loop, *([100] * 10))
        short = _entries(loop, *([100] * 4))
        queue = RequestQueue()
        queue.push(long)
        queue.push(short)
        second = queue.take(max_tokens=1000, max_size=64)
        assert set(short) <= set(second) and [e for e in second if e in long] == long[:6]

    asyncio.run(main())
