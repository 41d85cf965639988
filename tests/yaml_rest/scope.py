"""Which vendored tests elserve can pass, and why the others are skipped.

In the order they are checked (a test is counted under the first reason that applies):
1. its `skip` / `requires` sections (`prerequisites.py`);
2. a step this runner does not implement;
3. a model elserve does not serve: it serves PyTorch `text_expansion` and `pass_through` models uploaded in
   definition parts and refuses every other `PUT _ml/trained_models` with 400 (a test that expects
   the PUT to fail, with `catch`, still runs);
4. an API elserve does not serve (one missing from `apis.APIS`);
5. an API elserve will serve but does not yet (`NOT_YET_SERVED`: remove an entry once it is);
6. a known difference between elserve's answer and Elasticsearch's (`KNOWN_DIFFERENCES`), each
   naming the difference.
"""

from __future__ import annotations

import json
from typing import Any

from tests.yaml_rest.apis import APIS
from tests.yaml_rest.prerequisites import Cluster, clients_skip_reason, skip_reason
from tests.yaml_rest.runner import STEP_KINDS
from tests.yaml_rest.suite import Suite, YamlTest

# API name -> what is missing (an entry goes once the API is served).
NOT_YET_SERVED: dict[str, str] = {}

_NO_JVM = (
    "elserve has no JVM: GET _ml/memory/_stats answers jvm.heap_max_in_bytes and "
    "jvm.java_inference_max_in_bytes 0, the test asserts > 0"
)
# (file's short name, test name) -> the difference that makes the test fail against elserve.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    ("elasticsearch/ml/get_memory_stats.yml", "ML memory all nodes"): _NO_JVM,
    ("elasticsearch/ml/get_memory_stats.yml", "ML memory for ML nodes"): _NO_JVM,
    ("elasticsearch/ml/get_memory_stats.yml", "ML memory for specific node"): _NO_JVM,
}


def refused_model_kind(body: Any) -> str | None:
    """What elserve refuses in a `PUT _ml/trained_models` body (None: it accepts it)."""
    if isinstance(body, str):
        body = json.loads(body)
    if not isinstance(body, dict):
        return None
    model_type = body.get("model_type") or ("tree_ensemble" if "definition" in body else None)
    inference = body.get("inference_config")
    task = next(iter(inference), None) if isinstance(inference, dict) and inference else None
    if model_type == "pytorch" and task in ("text_expansion", "pass_through") and "definition" not in body:
        return None
    return f"{model_type} {task}"


def do_steps(steps: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for step in steps:
        ((kind, spec),) = step.items()
        if kind == "do":
            api = next(k for k in spec if k not in ("catch", "headers", "node_selector") and "warnings" not in k)
            out.append((api, spec))
    return out


def why_skipped(name: str, suite: Suite, test: YamlTest, cluster: Cluster) -> str | None:
    """The reason `test` of `suite` (short name `name`) is skipped against elserve, or None."""
    sections = [suite.setup, test.section, suite.teardown]
    reason = clients_skip_reason(suite.clients_requires)
    for section in sections:
        if reason is None and section is not None:
            reason = skip_reason(section.prerequisites, cluster)
    if reason:
        return reason
    steps = suite.steps_of(test)
    for step in steps:
        kind = next(iter(step))
        if kind not in STEP_KINDS:
            return f"step [{kind}] not implemented by this runner"
    calls = do_steps(steps)
    for api, spec in calls:
        if api == "ml.put_trained_model" and not spec.get("catch"):
            kind = refused_model_kind((spec[api] or {}).get("body"))
            if kind is not None:
                return (
                    f"PUTs a [{kind}] model; elserve serves only [pytorch text_expansion] "
                    "and [pytorch pass_through] models (400 on PUT)"
                )
    for api, _ in calls:
        if api not in APIS:
            return f"needs API [{api}], which elserve does not serve"
    for api, _ in calls:
        if api in NOT_YET_SERVED:
            return f"not yet served: [{api}] {NOT_YET_SERVED[api]}"
    return KNOWN_DIFFERENCES.get((name, test.name))
