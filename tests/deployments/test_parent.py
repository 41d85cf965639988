"""Allocations forked from their model's parent: shared memory, crash isolation, the parent's life."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from elserve.deployments.config import DEFAULT_MAX_BATCH_TOKENS, DeploymentConfig
from elserve.deployments.deployment import Deployment
from elserve.deployments.memory import estimate, process_memory
from elserve.deployments.parent import ModelParents
from elserve.deployments.parent_process import PARENT_NAME
from elserve.deployments.states import DeploymentState
from elserve.deployments.worker import WORKER_NAME
from elserve.runtime.heap import HUGE_PAGES_TUNABLE, TUNABLES_ENV
from tests.support.model_factory import build_bert_dir
from tests.support.waiting import wait_until_async

TEXTS = [f"text {i} about cats and dogs " + "and more words " * (i % 20) for i in range(48)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Big enough for packed layers where oneDNN packs (a 256 x 1,024 linear), small enough to load fast.
    return build_bert_dir(tmp_path_factory.mktemp("model"), hidden=256, heads=4, intermediate=1024, max_positions=128)


def _deployment(model_dir: Path, parents: ModelParents, deployment_id: str = "d", allocations: int = 1) -> Deployment:
    async def source() -> Path:
        return model_dir

    config = DeploymentConfig(deployment_id=deployment_id, model_id="m", number_of_allocations=allocations)
    return Deployment(config, source, parents=parents, query_lane=False)


async def _vectors(d: Deployment, texts: list[str]) -> list[dict[int, float]]:
    results = await d.infer(texts, timeout=None)  # no deadline: none is under test
    return [dict(zip(r.vector.indices.tolist(), r.vector.weights.tolist(), strict=True)) for r in results]


def _same(got: list[dict[int, float]], expected: list[dict[int, float]]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.keys() == b.keys()
        assert max((abs(a[k] - b[k]) for k in a), default=0.0) < 1e-4


def _field(pid: int, name: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def _gone(pid: int) -> bool:
    try:
        return _field(pid, "State").startswith("Z")
    except (OSError, KeyError):
        return True


def test_extra_allocations_share_the_parents_memory_and_survive_kills(model_dir: Path) -> None:
    async def main() -> None:
        d = _deployment(model_dir, ModelParents(), allocations=3)
        await d.start()
        assert d.state is DeploymentState.STARTED
        expected = await _vectors(d, TEXTS)
        parent = d.parent_pid
        assert parent is not None
        # The parent never started a thread (a fork copies only the forking thread; see parent_process.py).
        assert _field(parent, "Threads") == "1"
        assert Path(f"/proc/{parent}/comm").read_text().strip() == PARENT_NAME
        workers = [a.pid for a in d.allocations]
        for pid in workers:
            assert Path(f"/proc/{pid}/comm").read_text().strip() == WORKER_NAME
            assert int(_field(pid, "PPid")) == parent
            # Started (by way of the fork server) with malloc asking for huge pages (runtime/heap.py).
            assert HUGE_PAGES_TUNABLE.encode() in Path(f"/proc/{pid}/environ").read_bytes()

        # What an allocation would hold had it loaded the model itself (the parent's resident pages),
        # against what each forked one holds alone: a fraction of it.
        loaded = process_memory(parent)
        private = [process_memory(pid) for pid in workers]
        assert loaded is not None and all(m is not None for m in private)
        assert max(m.uss_bytes for m in private) < 0.4 * loaded.rss_bytes
        measured = d.memory()
        assert measured is not None
        assert measured.per_allocation_bytes < measured.per_deployment_bytes  # the parent is paid once
        assert measured.total_bytes >= loaded.pss_bytes + sum(m.pss_bytes for m in private) * 0.9

        # kill -9 of a worker: replaced from the same parent, and every request answered.
        os.kill(workers[0], signal.SIGKILL)
        replaced = lambda: d.started_allocations == 3 and workers[0] not in [a.pid for a in d.allocations]  # noqa: E731
        await wait_until_async(replaced, "replaced")
        assert all(int(_field(a.pid, "PPid")) == parent for a in d.allocations)
        _same(await _vectors(d, TEXTS), expected)

        # kill -9 of the parent: its workers keep serving, and the next allocation comes from a new parent.
        os.kill(parent, signal.SIGKILL)
        await wait_until_async(lambda: _gone(parent), "the parent exited")
        _same(await _vectors(d, TEXTS), expected)
        await d.scale(4)
        assert d.started_allocations == 4
        assert d.parent_pid not in (None, parent)
        assert int(_field(d.allocations[-1].pid, "PPid")) == d.parent_pid
        _same(await _vectors(d, TEXTS), expected)

        last_parent, pids = d.parent_pid, [a.pid for a in d.allocations]
        await d.stop()
        await wait_until_async(lambda: all(map(_gone, [last_parent, *pids])), "every process ended")

    asyncio.run(main())


def test_the_servers_own_environment_keeps_its_glibc_tunables(model_dir: Path) -> None:
    before = os.environ.get(TUNABLES_ENV)

    async def main() -> None:
        d = _deployment(model_dir, ModelParents())
        await d.start()
        await d.stop()

    asyncio.run(main())
    assert os.environ.get(TUNABLES_ENV) == before  # only the fork server was started with the tunable


def test_deployments_of_one_model_share_one_parent(model_dir: Path) -> None:
    async def main() -> None:
        parents = ModelParents()
        first, second = _deployment(model_dir, parents, "first"), _deployment(model_dir, parents, "second")
        await first.start()
        await second.start()
        parent = first.parent_pid
        assert parent is not None and second.parent_pid == parent
        assert int(_field(second.allocations[0].pid, "PPid")) == parent
        # Its memory is counted once: with the oldest deployment of the model.
        a, b = first.memory(), second.memory()
        assert a is not None and b is not None
        assert a.per_deployment_bytes > b.per_deployment_bytes
        # Seen only fresh (no batch yet), a worker's working set is not known: the estimate stands for it.
        estimated = estimate(model_dir, DEFAULT_MAX_BATCH_TOKENS)[1]
        assert second.memory_per()[1] == max(b.per_allocation_bytes, estimated)
        await first.stop()
        assert not _gone(parent) and len(await second.infer(["still served"], timeout=None)) == 1
        measured = second.memory()
        assert measured is not None and second.memory_per()[1] == measured.per_allocation_bytes  # once a batch ran
        await second.stop()  # the last deployment of the model ends its parent
        await wait_until_async(lambda: _gone(parent), "the parent exited")

    asyncio.run(main())


def test_a_worker_that_cannot_start_says_why(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Zero threads: the model's parent loads the model, the worker forked from it fails in its own start
    # (torch refuses zero intra-op threads), a real failure in the real process.
    async def main() -> None:
        parents = ModelParents()

        async def source() -> Path:
            return model_dir

        config = DeploymentConfig(deployment_id="d", model_id="m", number_of_allocations=1, threads_per_allocation=0)
        d = Deployment(config, source, parents=parents, query_lane=False)
        await d.start()
        assert d.state is DeploymentState.FAILED
        assert d.reason is not None
        # The exception and where it was raised, file names only (no server path reaches a client).
        assert "could not start: RuntimeError: set_num_threads expects a positive integer" in d.reason, d.reason
        assert "(at encoder.py:" in d.reason and "worker.py:" in d.reason, d.reason
        assert str(model_dir.parent) not in d.reason and "/" not in d.reason.split("(at ", 1)[1]
        await d.stop()

    with caplog.at_level("ERROR", logger="elserve.deployments"):
        asyncio.run(main())
    # The whole traceback in the server's log.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Traceback (most recent call last)" in logged and "encoder.use_threads(num_threads)" in logged, logged
