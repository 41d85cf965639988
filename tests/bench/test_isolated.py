from __future__ import annotations

import os
from pathlib import Path

import pytest

from elserve.bench.isolated import ProgressCallback, RunnerFailed, run_isolated


def child_square(job: int, progress: ProgressCallback) -> dict:
    progress("squaring", 0, 1)
    print("chatter that goes to the log")
    progress("squaring", 1, 1)
    return {"square": job * job, "pid": os.getpid(), "env": os.environ.get("BENCH_TEST_VAR")}


def child_raises(job: str, progress: ProgressCallback) -> None:
    raise ValueError(job)


def child_dies(job: int, progress: ProgressCallback) -> None:
    os._exit(job)


def test_the_target_runs_in_another_process_with_its_env(tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    result = run_isolated(
        child_square, 7, tmp_path / "log.txt", lambda *p: seen.append(p), env={"BENCH_TEST_VAR": "set"}
    )
    assert result["square"] == 49
    assert result["pid"] != os.getpid()
    assert result["env"] == "set"
    assert "BENCH_TEST_VAR" not in os.environ
    assert seen == [("squaring", 0, 1), ("squaring", 1, 1)]
    assert "chatter that goes to the log" in (tmp_path / "log.txt").read_text()


def test_an_exception_comes_back_with_its_traceback(tmp_path: Path) -> None:
    with pytest.raises(RunnerFailed, match="ValueError: the message"):
        run_isolated(child_raises, "the message", tmp_path / "log.txt")


def test_a_dead_runner_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RunnerFailed, match="died with exit code 3"):
        run_isolated(child_dies, 3, tmp_path / "log.txt")
