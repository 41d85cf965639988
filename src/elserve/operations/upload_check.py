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

# A fresh interpreter with PyTorch imported holds about 400 MB of private writable memory before any
# model (its libraries' data and the allocator's arenas): the limit is on top of that.
RUNTIME_DATA_BYTES = 1 << 30
# The check's default memory: the runtime, then the model loaded, the weights copied once by the fast
# path's extraction, and room for a sample batch's activations.
DEFINITION_COPIES = 4
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
    """The server is stopping: the check was ended, the model is neither accepted nor refused."""


class RunningChecks:
    """The check processes running now, so that a server shutting down ends them instead of waiting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: set[subprocess.Popen[bytes]] = set()
        self._closed = False

    def add(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.add(process)
            closed = self._closed
        if closed:
            process.kill()

    def discard(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.discard(process)

    @property
    def closed(self) -> bool:
        return self._closed

    def kill_all(self) -> None:
        """Kill every check (their requests answer that the check was ended) and any started later."""
        with self._lock:
            self._closed = True
            processes = list(self._processes)
        for process in processes:
            process.kill()


def run_check(model_dir: Path, limits: CheckLimits, definition_bytes: int, running: RunningChecks) -> dict[str, Any]:
    """Check the Elastic-layout model in `model_dir` in a child process; its shapes record, or
    `CheckFailed`."""
    memory = limits.memory_for(definition_bytes)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_"))}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # one core: a check, not a benchmark
    cpu_seconds = max(1, int(limits.timeout_s) + 5)
    process = subprocess.Popen(
        [sys.executable, "-m", __name__, str(memory), str(cpu_seconds), str(os.getpid())],
        cwd=model_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a SIGINT or SIGTERM to the server's group is the server's to handle
    )
    running.add(process)
    try:
        out, err = process.communicate(timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise CheckFailed(
            f"loading it and running it on a sample batch did not finish within [{_seconds(limits.timeout_s)}] "
            "(the upload check's time limit)"
        ) from None
    finally:
        running.discard(process)
        if process.poll() is None:  # this thread was interrupted: the child never outlives the check
            process.kill()
            process.wait()
    answer = _answer(out)
    if answer is None and running.closed:
        raise CheckInterrupted()
    if answer is None:
        if process.returncode < 0:
            reason = f"the check's process was ended by signal [{signal.Signals(-process.returncode).name}]"
        else:
            reason = f"the check's process exited with status [{process.returncode}]"
        last = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
        raise CheckFailed(reason + (f": {last[0]}" if last else ""))
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
        from elserve.runtime.torchscript import check_elastic_model

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
    stdout.write(json.dumps(answer) + "\n")
    stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
