"""Schemathesis against elserve's own OpenAPI description, on a real server, with and without credentials.

The check: no answer is a 5xx, none hangs (a request timeout), the server stays healthy and
small, and it logs no error. The default run is short; `make soak` sets ELSERVE_FUZZ_EXAMPLES
for a long one, every phase. Every route is fuzzed, PUT and `_start` included: the node's capacity
bounds how many workers a fuzzed `num_allocations` can start.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import PASSWORD, Server

SOAK_EXAMPLES = int(os.environ.get("ELSERVE_FUZZ_EXAMPLES", "0"))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("elserve-fuzz") / "data").start() as srv:
        yield srv


@pytest.fixture(scope="module")
def schema_file(fuzz_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = httpx.get(f"{fuzz_server.url}/_elserve/openapi.json", auth=("elastic", PASSWORD), timeout=60)
    assert r.status_code == 200
    path = tmp_path_factory.mktemp("schema") / "openapi.json"
    path.write_bytes(r.content)
    return path


def test_openapi_describes_every_route(fuzz_server: Server, schema_file: Path) -> None:
    import json

    doc = json.loads(schema_file.read_text())
    operations = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    for expected in [
        ("GET", "/"),
        ("PUT", "/_inference/{task_type}/{inference_id}"),
        ("POST", "/_inference/{inference_id}"),
        ("DELETE", "/_inference/{inference_id}"),
        ("GET", "/_ml/trained_models/{model_id}/_stats"),
        ("POST", "/_ml/trained_models/{model_id}/deployment/_start"),
        ("GET", "/_prometheus/metrics"),
        ("GET", "/_elserve/openapi.json"),
    ]:
        assert expected in operations
    infer = doc["paths"]["/_inference/{inference_id}"]["post"]
    assert "input" in infer["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"timeout", "pretty", "filter_path"} <= {p["name"] for p in infer["parameters"] if p["in"] == "query"}
    assert httpx.get(f"{fuzz_server.url}/_elserve/openapi.json", timeout=60).status_code == 401


def _schemathesis(server: Server, schema: Path, examples: int, seed: int, auth: bool, soak: bool) -> str:
    st = Path(sys.executable).with_name("st")
    command = [
        str(st), "run", str(schema), "--url", server.url,
        "--checks", "not_a_server_error",
        "--max-examples", str(examples),
        "--seed", str(seed),
        "--workers", "2",
        "--request-timeout", "120",  # a hang is a failure
        "--generation-database", "none",
        "--no-color",
    ]  # fmt: skip
    if auth:
        command += ["--auth", f"elastic:{PASSWORD}"]
    if not soak:
        command += ["--phases", "fuzzing"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800, cwd=schema.parent)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    return done.stdout


def _cases(output: str) -> tuple[int, int]:
    generated = re.search(r"(\d+) generated", output)
    failed = re.search(r"(\d+) failed", output)
    return (int(generated.group(1)) if generated else 0, int(failed.group(1)) if failed else 0)


# Without credentials every route answers 401 before its body is read (tests/e2e/test_security_api.py
# checks each route); fuzzing that side runs with `make test-all` and `make soak`.
@pytest.mark.parametrize(
    "auth",
    [pytest.param(True, id="with-credentials"), pytest.param(False, id="without-credentials", marks=pytest.mark.slow)],
)
def test_fuzz_no_server_error_no_hang(fuzz_server: Server, schema_file: Path, auth: bool) -> None:
    examples = SOAK_EXAMPLES or (4 if auth else 2)
    output = _schemathesis(fuzz_server, schema_file, examples, seed=15, auth=auth, soak=bool(SOAK_EXAMPLES))
    generated, failed = _cases(output)
    print(f"schemathesis ({'with' if auth else 'without'} credentials): {generated} cases, {failed} failures")
    assert generated > 0 and failed == 0
    # Healthy afterwards: answers, logs no error, holds no runaway memory.
    r = httpx.get(fuzz_server.url, auth=("elastic", PASSWORD), timeout=60)
    assert r.status_code == 200
    log = fuzz_server.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-4000:]
    assert fuzz_server.process is not None
    rss_kb = next(
        int(line.split()[1])
        for line in Path(f"/proc/{fuzz_server.process.pid}/status").read_text().splitlines()
        if line.startswith("VmRSS")
    )
    assert rss_kb < 1_500_000
