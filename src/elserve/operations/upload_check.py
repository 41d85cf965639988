"""The completion check of an uploaded model, run in a child process under a time and a memory limit.

An uploaded `model.pt` is code: TorchScript runs what its author wrote when it is loaded
(`__setstate__`) and called (`forward`). Elasticsearch never runs an uploaded model in its HTTP
process (the native `pytorch_inference` process loads it at deployment); elserve checks the model
when its upload completes, and does so here, in a fresh interpreter that is killed at its deadline:

- memory: `RLIMIT_DATA` (the process's heap and private writable mappings, what tensors take) is set
  before anything of the model is read, so an allocation past it fails inside the model;
- time: the parent waits `timeout_s`, then kills the child (and `RLIMIT_CPU` stops a child whose
  parent died meanwhile);
- the child runs in the assembled model's directory and names its files relatively, so no message
  carries a server path.

The child answers one JSON line on stdout: `{"shapes": ...}` (what sizing a deployment needs of the
model, `runtime.memory.SHAPES_FILE`, so the server never loads the model to size it) or
`{"error": "..."}`.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elserve.bytesize import byte_size_text

# What the check's interpreter takes before any model: PyTorch and the runtime imported come to about
# 200 MB of data segment (`VmData`); the rest of this allowance is headroom for other builds and machines.
RUNTIME_DATA_BYTES = 1 << 30
# The check's default memory: the runtime, then the model loaded, the weights copied once by the fast
# path's extraction, and room for a sample batch's activations.
DEFINITION_COPIES = 4
# A reason longer than this (a model may raise any text) is cut.
_MAX_REASON = 4000
# The check's process name (/proc/<pid>/comm).
CHECK_NAME = "elserve-check"


@dataclass(frozen=True)
class CheckLimits:
    timeout_s: float = 120.0
    # None: `RUNTIME_DATA_BYTES + DEFINITION_COPIES x` the definition's length.
    memory_bytes: int | None = None

    def memory_for(self, definition_bytes: int) -> int:
        if self.memory_bytes is not None:
            return self.memory_bytes
        return RUNTIME_DATA_BYTES + DEFINITION_COPIES * definition_bytes


class CheckFailed(Exception):
    """The model failed its check; the message says why, with no server path."""


class CheckInterrupted(Exception):
    """The check was ended from outside (the server stopping, the model deleted): the model is neither
    accepted nor refused."""


class RunningChecks:
    """The check processes running now, by the key of their upload: a server shutting down ends them
    all instead of waiting, a deleted model's check is ended at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: dict[subprocess.Popen[bytes], str] = {}
        self._ended: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    def add(self, process: subprocess.Popen[bytes], key: str) -> None:
        with self._lock:
            self._processes[process] = key
            closed = self._closed
        if closed:
            self._end([process])

    def discard(self, process: subprocess.Popen[bytes]) -> bool:
        """Forget a finished check; True when it was ended from outside."""
        with self._lock:
            self._processes.pop(process, None)
            ended = process in self._ended
            self._ended.discard(process)
        return ended

    def end(self, key: str) -> None:
        """End the check of one upload, if one runs."""
        with self._lock:
            processes = [p for p, k in self._processes.items() if k == key]
        self._end(processes)

    def kill_all(self) -> None:
        """End every check, and any started later."""
        with self._lock:
            self._closed = True
            processes = list(self._processes)
        self._end(processes)

    def _end(self, processes: list[subprocess.Popen[bytes]]) -> None:
        with self._lock:
            self._ended.update(processes)
        for process in processes:
            process.kill()


def run_check(
    model_dir: Path, limits: CheckLimits, definition_bytes: int, running: RunningChecks, key: str
) -> dict[str, Any]:
    """Check the Elastic-layout model in `model_dir` in a child process; its shapes record, or
    `CheckFailed` (the model's fault), or `CheckInterrupted` (`running` ended it)."""
    memory = limits.memory_for(definition_bytes)
    # One core: a check, not a benchmark (the rest of the environment, such as the ISA limits, as the server's).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cpu_seconds = max(1, int(limits.timeout_s) + 5)
    process = subprocess.Popen(
        [sys.executable, "-m", __name__, str(memory), str(cpu_seconds), str(os.getpid())],
        cwd=model_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,  # the answer line only: what the model prints goes to stderr
        stderr=subprocess.DEVNULL,  # a model may print without end: none of it is kept
        start_new_session=True,  # a SIGINT or SIGTERM to the server's group is the server's to handle
    )
    running.add(process, key)
    ended = False
    try:
        out, _ = process.communicate(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise CheckFailed(
            f"loading it and running it on a sample batch did not finish within [{_seconds(limits.timeout_s)}] "
            "(the upload check's time limit)"
        ) from None
    finally:
        ended = running.discard(process)
        if process.poll() is None:  # this thread was interrupted: the child never outlives the check
            process.kill()
            process.wait()
    answer = _answer(out)
    if answer is None and ended:
        raise CheckInterrupted()
    if answer is None:
        if process.returncode < 0:
            raise CheckFailed(f"the check's process was ended by signal [{signal.Signals(-process.returncode).name}]")
        raise CheckFailed(f"the check's process exited with status [{process.returncode}]")
    if "error" in answer:
        message = _short(str(answer["error"]))
        if answer.get("memory"):
            message = f"it needs more than [{byte_size_text(memory)}] of memory (the upload check's limit): {message}"
        raise CheckFailed(message)
    return dict(answer["shapes"])


def _answer(out: bytes) -> dict[str, Any] | None:
    lines = out.decode(errors="replace").strip().splitlines()
    if not lines:
        return None
    try:
        answer = json.loads(lines[-1])
    except ValueError:
        return None
    return answer if isinstance(answer, dict) and ("error" in answer or "shapes" in answer) else None


def _short(message: str) -> str:
    """A TorchScript failure prints the model's code and traceback over many lines: its first line
    (what failed) and its last (the error) are the reason."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if len(lines) <= 2:
        return " ".join(lines)
    return f"{lines[0]} ... {lines[-1]}"


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _is_memory_error(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, MemoryError) or "can't allocate memory" in text or "Cannot allocate memory" in text


def _child(memory: int, cpu_seconds: int, parent: int) -> int:
    """The child: limits first, then the model. Its stdout carries only the answer line."""
    from elserve.deployments.worker import die_with_parent, set_name

    die_with_parent(parent)  # a server killed meanwhile leaves no check running
    set_name(CHECK_NAME)
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what the model or the libraries print goes to stderr
    try:
        from elserve.runtime.config import ModelFormatError
        from elserve.runtime.memory import shapes_record
        from elserve.runtime.model_check import check_elastic_model

        model_dir = Path(".")
        try:
            check_elastic_model(model_dir)
            answer: dict[str, Any] = {"shapes": shapes_record(model_dir)}
        except ModelFormatError as e:
            answer = {"error": str(e), "memory": _is_memory_error(e)}
    except MemoryError as e:
        answer = {"error": f"MemoryError: {e}", "memory": True}
    except Exception as e:  # anything the model's code raises is the model's failure
        answer = {"error": f"{type(e).__name__}: {e}", "memory": _is_memory_error(e)}
    answer["error"] = str(answer.get("error", ""))[:_MAX_REASON] if "error" in answer else None
    if answer["error"] is None:
        del answer["error"]
    stdout.write(json.dumps(answer) + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
