"""The batch hold test hook (deployments/batch_hold.py): read from the server's environment, a batch
waits while the file exists and says so with its marker; without the file nothing waits."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from elserve.deployments import batch_hold
from tests.support.hold import held, wait_until_held


def test_configured_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(batch_hold.HOLD_FILE_ENV, raising=False)
    assert batch_hold.configured() is None
    monkeypatch.setenv(batch_hold.HOLD_FILE_ENV, "")
    assert batch_hold.configured() is None  # set but empty: no hook
    monkeypatch.setenv(batch_hold.HOLD_FILE_ENV, str(tmp_path / "hold"))
    assert batch_hold.configured() == str(tmp_path / "hold")


def test_no_file_no_wait_and_no_marker(tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    batch_hold.wait(None)
    batch_hold.wait("")  # empty: no hook (not the current directory)
    asyncio.run(batch_hold.wait_async(""))
    batch_hold.wait(str(hold))  # configured, but the file does not exist
    asyncio.run(batch_hold.wait_async(str(hold)))
    assert not batch_hold.held_marker(hold).exists()


def test_a_batch_waits_while_the_file_exists(tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    done = threading.Event()
    with held(hold):
        waiter = threading.Thread(target=lambda: (batch_hold.wait(str(hold)), done.set()))
        waiter.start()
        wait_until_held(hold)
        assert not done.is_set()  # marked as held, and still waiting
    waiter.join(timeout=300)
    assert done.is_set()


def test_an_async_batch_waits_while_the_file_exists(tmp_path: Path) -> None:
    hold = tmp_path / "hold"

    async def scenario() -> None:
        with held(hold):
            waiting = asyncio.create_task(batch_hold.wait_async(str(hold)))
            while not batch_hold.held_marker(hold).exists():
                await asyncio.sleep(0.01)
            assert not waiting.done()
        await asyncio.wait_for(waiting, timeout=300)

    asyncio.run(scenario())
