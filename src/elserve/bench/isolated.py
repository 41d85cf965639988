"""Each runner in a process of its own, so that its peak memory, its thread settings and the
libraries it imports are its own and cannot colour the next runner's figures."""

from __future__ import annotations

import multiprocessing
import os
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")

# (phase, done, total): a runner's progress as it goes, drawn by the parent.
ProgressCallback = Callable[[str, int, int], None]

_spawn = multiprocessing.get_context("spawn")


class RunnerFailed(RuntimeError):
    """The runner raised, or its process died; the message ends with the end of its log."""


class Progress:
    """The child's side: sends progress to the parent."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __call__(self, phase: str, done: int, total: int) -> None:
        self._conn.send(("progress", (phase, done, total)))


def _child(conn: Connection, log_path: str) -> None:
    # The runners' own chatter (weight loading bars, warnings) goes to a log, not over the
    # parent's live display.
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    try:
        target, job = conn.recv()
        result = target(job, Progress(conn))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        conn.send(("error", traceback.format_exc()))
    else:
        conn.send(("result", result))
    finally:
        conn.close()


def run_isolated(
    target: Callable[[Job, ProgressCallback], Result],
    job: Job,
    log_path: Path,
    on_progress: ProgressCallback | None = None,
    env: dict[str, str] | None = None,
) -> Result:
    """`target(job, progress)` in a fresh spawned process; its return value, or `RunnerFailed`.

    `target` must be a module-level function and `job` picklable. `env` is set in the child
    before it imports anything (libraries read some variables at import).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    parent, child = _spawn.Pipe()
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})  # a spawned child copies the parent's environment at start
    try:
        process = _spawn.Process(target=_child, args=(child, str(log_path)), daemon=True)
        process.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    child.close()
    # The job (a corpus can be megabytes) goes over the pipe, not in the start-up payload: a
    # child that dies while starting would leave the parent blocked writing that payload.
    try:
        parent.send((target, job))
    except OSError as e:
        process.join()
        parent.close()
        raise RunnerFailed(
            f"the runner process died at start (exit code {process.exitcode}):\n{_tail(log_path)}"
        ) from e
    try:
        while True:
            # Wake on a message or on the child's death, whichever comes first.
            ready = wait([parent, process.sentinel])
            if parent in ready:
                try:
                    kind, payload = parent.recv()
                except EOFError:
                    kind, payload = "died", None
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(*payload)
                    continue
                if kind == "result":
                    return payload
                if kind == "error":
                    raise RunnerFailed(f"{payload}\n(log: {log_path})")
            process.join()
            raise RunnerFailed(f"the runner process died with exit code {process.exitcode}:\n{_tail(log_path)}")
    finally:
        parent.close()
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
            process.join()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
