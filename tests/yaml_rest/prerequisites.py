"""`skip` and `requires` sections, decided against elserve as Elasticsearch's runner decides them
against a cluster (`PrerequisiteSection.java`, `Prerequisites.java`, `VersionRange.java` in
elastic/elasticsearch `test/yaml-rest-runner`).

- `features` (in `skip`) and `test_runner_features` (in `requires`) name runner features: a test
  that needs one this runner lacks is skipped (`xpack` / `no_xpack` are about the cluster: elserve
  is an x-pack node, it serves the ML and inference APIs).
- `version` ranges are matched against the version `GET /` reports (elserve answers as 9.x).
- `cluster_features`: Elasticsearch's historical features `gte_vX.Y.Z` hold when the cluster's
  version is at least X.Y.Z; elserve publishes no other feature.
- `capabilities` need `GET /_capabilities`, which elserve does not serve: required ones are absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The runner features this runner implements (`Features.java` names them).
RUNNER_FEATURES = frozenset(
    {
        "allowed_warnings",
        "allowed_warnings_regex",
        "arbitrary_key",
        "catch_unauthorized",
        "embedded_stash_key",
        "headers",
        "stash_in_key",
        "stash_in_path",
        "warnings",
        "warnings_regex",
    }
)

Version = tuple[int, int, int]


def parse_version(text: str) -> Version:
    numbers = [int(p) for p in text.strip().split("-")[0].split(".")[:3]]
    while len(numbers) < 3:
        numbers.append(0)
    return numbers[0], numbers[1], numbers[2]


@dataclass(frozen=True)
class Cluster:
    """What the prerequisites are decided against: the server's version and published features."""

    version: Version
    features: frozenset[str] = frozenset()

    def has_feature(self, name: str) -> bool:
        if name.startswith("gte_v"):
            return self.version >= parse_version(name[len("gte_v") :])
        return name in self.features


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def in_version_ranges(version: Version, ranges: str) -> bool:
    """`VersionRange.parseVersionRanges`: `all`, or comma-separated `lower - upper` with either
    end open."""
    if ranges.strip() == "all":
        return True
    for item in ranges.split(","):
        lower, _, upper = item.partition("-")
        low = parse_version(lower) if lower.strip() else (0, 0, 0)
        high = parse_version(upper) if upper.strip() else (99, 99, 99)
        if low <= version <= high:
            return True
    return False


def _runner_features_missing(names: list[str]) -> str | None:
    for name in names:
        if name in ("xpack", "no_xpack"):
            continue
        if name not in RUNNER_FEATURES:
            return f"runner feature [{name}] not implemented by this runner"
    return None


def skip_reason(prerequisites: list[dict[str, Any]], cluster: Cluster) -> str | None:
    """Why the section must not run here, or None."""
    for step in prerequisites:
        ((kind, body),) = step.items()
        body = body or {}
        if kind == "skip":
            features = _strings(body.get("features"))
            reason = _runner_features_missing(features)
            if reason:
                return reason
            if "no_xpack" in features:
                return "needs a cluster without x-pack (elserve serves the x-pack ML and inference APIs)"
            if body.get("awaits_fix"):
                return f"awaits fix: {body['awaits_fix']}"
            if "version" in body and in_version_ranges(cluster.version, str(body["version"])):
                return f"skipped on this version: {body.get('reason', '')}".strip()
            present = [f for f in _strings(body.get("cluster_features")) if cluster.has_feature(f)]
            if present:
                return f"skipped when the cluster has feature [{present[0]}]"
        elif kind == "requires":
            reason = _runner_features_missing(_strings(body.get("test_runner_features")))
            if reason:
                return reason
            absent = [f for f in _strings(body.get("cluster_features")) if not cluster.has_feature(f)]
            if absent:
                return f"requires cluster feature [{absent[0]}], which elserve does not publish"
            if body.get("capabilities"):
                return "requires capabilities, checked with GET /_capabilities, which elserve does not serve"
        else:
            raise ValueError(f"unknown prerequisite [{kind}]")
    return None


def clients_skip_reason(requires: dict[str, Any] | None) -> str | None:
    """elasticsearch-clients-tests' `requires` document: elserve answers as a stack Elasticsearch."""
    if requires is None:
        return None
    if requires.get("feature_flag"):
        return f"behind feature flag [{requires['feature_flag']}]"
    if requires.get("stack") is False:
        return "serverless-only test (elserve answers as a stack Elasticsearch)"
    return None
