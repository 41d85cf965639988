"""`make soak`: the authenticated-abuse run (issue 24). Against a real server, one scenario at a time:
uploads racing deletes, brute force against the login brake, idle connections at the cap, and a full
small disk (a tmpfs; skipped where this machine may not mount one). Each reports the server's peak
RSS, its open descriptors, and the latency another client saw meanwhile (a keep-alive client asking
`GET /` every 50 ms); each asserts only what must hold on any machine: no 500, no hang, the server
still serves after it, and its descriptors come back down."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.server import PASSWORD, Server

pytestmark = [pytest.mark.slow, pytest.mark.soak]

MAX_CONNECTIONS = 1000
MODEL_CONFIG = {
    "model_type": "pytorch",
    "input": {"field_names": ["text_field"]},
    "inference_config": {"text_expansion": {"tokenization": {"bert": {"do_lower_case": True}}}},
}


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def _descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Watch:
    """What the server and another client saw during one scenario."""

    latencies: list[float] = field(default_factory=list)
    probe_errors: Counter = field(default_factory=Counter)
    peak_rss_kb: int = 0
    peak_descriptors: int = 0
    descriptors_before: int = 0

    def report(self, name: str, server: Server, **figures: object) -> None:
        lat = sorted(self.latencies) or [float("nan")]

        def p(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000

        extra = ", ".join(f"{k}={v}" for k, v in figures.items())
        print(
            f"\n[soak] {name}: peak RSS {self.peak_rss_kb / 1024:.0f} MB, descriptors {self.descriptors_before} -> "
            f"peak {self.peak_descriptors} -> {_descriptors(server.process.pid)} after; other client: "
            f"{len(self.latencies)} answers, p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {p(1.0):.1f} ms, "
            f"errors {dict(self.probe_errors)}" + (f"; {extra}" if extra else "")
        )


@contextmanager
def watched(server: Server) -> Iterator[Watch]:
    pid = server.process.pid
    watch = Watch(descriptors_before=_descriptors(pid))
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM from now
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            watch.peak_descriptors = max(watch.peak_descriptors, _descriptors(pid))
            stop.wait(0.05)

    connected = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=60) as client:
            client.get("/")  # its connection is open before the scenario begins, and kept alive
            connected.set()
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    r = client.get("/")
                    if r.status_code == 200:
                        watch.latencies.append(time.perf_counter() - started)
                    else:
                        watch.probe_errors[r.status_code] += 1
                except httpx.HTTPError as exc:
                    watch.probe_errors[type(exc).__name__] += 1
                stop.wait(0.05)

    threads = [threading.Thread(target=sample), threading.Thread(target=probe)]
    for t in threads:
        t.start()
    connected.wait(120)
    try:
        yield watch
    finally:
        stop.set()
        for t in threads:
            t.join(120)
        watch.peak_rss_kb = _status_kb(pid, "VmHWM:")


@pytest.fixture(scope="module")
def abused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(
        tmp_path_factory.mktemp("elserve-abuse") / "data",
        args=["--http-max-connections", str(MAX_CONNECTIONS), "--http-read-timeout", "2s"],
    ).start()
    yield srv
    srv.stop()


def _served(server: Server) -> bool:
    return httpx.get(server.url, auth=("elastic", PASSWORD), timeout=60).status_code == 200


def _part(size: int) -> dict:
    return {
        "definition": base64.b64encode(os.urandom(size)).decode(),
        "total_definition_length": 4 * size,
        "total_parts": 4,
    }


def test_soak_uploads_racing_deletes(abused: Server) -> None:
    """Eight clients each create a model, send its definition parts while another client deletes it, for 30 s."""
    statuses: Counter = Counter()
    deadline = time.monotonic() + 30
    part = _part(256 * 1024)

    def client(n: int) -> None:
        with httpx.Client(base_url=abused.url, auth=("elastic", PASSWORD), timeout=120) as http:
            round_ = 0
            while time.monotonic() < deadline:
                model_id = f"race-{n}-{round_ % 3}"
                round_ += 1
                statuses[http.put(f"/_ml/trained_models/{model_id}", json=MODEL_CONFIG).status_code] += 1
                for i in range(4):
                    statuses[http.put(f"/_ml/trained_models/{model_id}/definition/{i}", json=part).status_code] += 1
                statuses[http.delete(f"/_ml/trained_models/{model_id}").status_code] += 1

    def deleter() -> None:
        with httpx.Client(base_url=abused.url, auth=("elastic", PASSWORD), timeout=120) as http:
            while time.monotonic() < deadline:
                for n in range(8):
                    statuses[http.delete(f"/_ml/trained_models/race-{n}-0").status_code] += 1

    with watched(abused) as watch, ThreadPoolExecutor(9) as pool:
        for future in [pool.submit(client, n) for n in range(8)] + [pool.submit(deleter)]:
            future.result()
    staging = (
        sorted(p.name for p in (abused.data_dir / "models").glob(".upload-*"))
        if (abused.data_dir / "models").exists()
        else []
    )
    watch.report("uploads racing deletes", abused, statuses=dict(statuses), staging_left=len(staging))
    assert statuses[500] == 0
    assert _served(abused)


def test_soak_brute_force_against_the_brake(abused: Server) -> None:
    """Twenty connections guess `elastic`'s password for 20 s; then the right password is tried."""
    statuses: Counter = Counter()
    deadline = time.monotonic() + 20

    def guesser(n: int) -> None:
        with httpx.Client(base_url=abused.url, timeout=120) as http:
            i = 0
            while time.monotonic() < deadline:
                statuses[http.get("/", auth=("elastic", f"wrong-{n}-{i}")).status_code] += 1
                i += 1

    with watched(abused) as watch, ThreadPoolExecutor(20) as pool:
        for future in [pool.submit(guesser, n) for n in range(20)]:
            future.result()
    right = httpx.get(abused.url, auth=("elastic", PASSWORD), timeout=120).status_code
    guesses = sum(statuses.values())
    watch.report(
        "brute force", abused, guesses_per_s=f"{guesses / 20:.1f}", statuses=dict(statuses), right_password_then=right
    )
    assert statuses[500] == 0 and statuses[200] == 0


def test_soak_idle_connections_at_the_cap(abused: Server) -> None:
    """1,500 connections that send nothing, against a cap of 1,000 and a 2 s read timeout."""
    refused = 0
    opened: list[socket.socket] = []
    with watched(abused) as watch:
        for _ in range(1500):
            try:
                opened.append(socket.create_connection(("127.0.0.1", abused.port), timeout=30))
            except OSError:
                refused += 1
        time.sleep(0.5)
        closed_at_once = 0
        for sock in opened[MAX_CONNECTIONS:]:
            sock.settimeout(0.01)
            try:
                if sock.recv(1) == b"":
                    closed_at_once += 1
            except ConnectionResetError:
                closed_at_once += 1
            except TimeoutError:
                pass
        time.sleep(4)  # past the read timeout: the idle ones are closed by the server
        for sock in opened:
            sock.close()
        deadline = time.monotonic() + 60
        while _descriptors(abused.process.pid) > watch.descriptors_before + 20 and time.monotonic() < deadline:
            time.sleep(0.1)
    refusals = [line for line in abused.log().splitlines() if "--http-max-connections" in line]
    watch.report(
        "idle connections at the cap",
        abused,
        opened=len(opened),
        refused_at_connect=refused,
        closed_at_once_over_the_cap=closed_at_once,
        refusal_log_lines=len(refusals),
    )
    assert refusals
    assert _descriptors(abused.process.pid) <= watch.descriptors_before + 20
    assert _served(abused)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here ({done.stderr.strip() or done.returncode}): no small disk to fill")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def test_soak_a_full_small_disk(small_disk: Path) -> None:
    """A 48 MB data directory filled by definition parts; then the model is deleted and the server asked again."""
    server = Server(small_disk / "data")
    server.log_path = small_disk.parent / "full-disk-server.log"  # not on the disk it fills
    server.start()
    statuses: Counter = Counter()
    try:
        with (
            watched(server) as watch,
            httpx.Client(base_url=server.url, auth=("elastic", PASSWORD), timeout=120) as http,
        ):

            def outcome(method: str, path: str, **kwargs: object) -> int | str:
                try:
                    return http.request(method, path, **kwargs).status_code
                except httpx.TransportError as exc:  # reported, not raised: what a full disk does is the finding
                    return type(exc).__name__

            for m in range(20):
                model_id = f"fill-{m}"
                statuses[outcome("PUT", f"/_ml/trained_models/{model_id}", json=MODEL_CONFIG)] += 1
                for i in range(4):
                    statuses[outcome("PUT", f"/_ml/trained_models/{model_id}/definition/{i}", json=_part(2 << 20))] += 1
            full = os.statvfs(small_disk)
            deleted = Counter(outcome("DELETE", f"/_ml/trained_models/fill-{m}") for m in range(20))
            free_after = os.statvfs(small_disk)
        watch.report(
            "a full small disk",
            server,
            statuses=dict(statuses),
            deletes=dict(deleted),
            free_mb_when_full=full.f_bavail * full.f_frsize // (1 << 20),
            free_mb_after_deletes=free_after.f_bavail * free_after.f_frsize // (1 << 20),
        )
        assert _served(server)
    finally:
        server.stop()
        errors = [line for line in server.log().splitlines() if "ERROR" in line or line.startswith("OSError")]
        print(f"[soak] the full disk's server log: {len(errors)} error lines; the last: {errors[-1:]}")
    restarted = Server(small_disk / "data")  # and it starts again on that disk
    restarted.log_path = small_disk.parent / "full-disk-restarted.log"
    restarted.start()
    try:
        assert _served(restarted)
    finally:
        restarted.stop()
