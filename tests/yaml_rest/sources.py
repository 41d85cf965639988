"""The vendored YAML test files: where each comes from, and how its source's runner treats
warnings. `vendored/README.md` lists the same files with their licences; a test checks that the
two and the folder agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VENDORED = Path(__file__).resolve().parent / "vendored"


@dataclass(frozen=True)
class Source:
    repository: str  # owner/name on GitHub
    folder: str  # the folder under vendored/ holding this repository's files (their paths kept)
    strict_warnings: bool  # True: Elasticsearch's own runner (an unexpected Warning fails)
    licence: str


ELASTICSEARCH = Source(
    "elastic/elasticsearch",
    "elasticsearch",
    strict_warnings=True,
    licence="no header; the repository's default: Server Side Public License v1 or Elastic License 2.0",
)
CLIENTS_TESTS = Source(
    "elastic/elasticsearch-clients-tests",
    "elasticsearch-clients-tests",
    strict_warnings=False,
    licence="Apache License 2.0 (the repository's LICENSE)",
)
SOURCES = (ELASTICSEARCH, CLIENTS_TESTS)

_ES_TESTS = "x-pack/plugin/src/yamlRestTest/resources/rest-api-spec/test"
_CLIENTS_SNAPSHOT = "9f63754ea33403e85870d1f07af369e67735d976"

# (source, path in its repository, commit of the stored version copied)
FILES: tuple[tuple[Source, str, str], ...] = (
    (ELASTICSEARCH, f"{_ES_TESTS}/inference/inference_crud.yml", "e43a3531731776cbf2ff1e7ed7a5dabf0d375c88"),
    (ELASTICSEARCH, f"{_ES_TESTS}/ml/3rd_party_deployment.yml", "259baf01b52992392a542d832d37d3898e8d5385"),
    (ELASTICSEARCH, f"{_ES_TESTS}/ml/get_memory_stats.yml", "fbdf6c400cef241e325e9ee39d905d15f9435444"),
    (ELASTICSEARCH, f"{_ES_TESTS}/ml/get_trained_model_stats.yml", "26661978d272a8a5f7fe9e82cfa75ed60796ae1e"),
    (ELASTICSEARCH, f"{_ES_TESTS}/ml/update_trained_model_deployment.yml", "6d85dcd554029f73750ce039fb3a9e39955edb63"),
    (CLIENTS_TESTS, "tests/inference/10_basic.yml", _CLIENTS_SNAPSHOT),
    (CLIENTS_TESTS, "tests/machine_learning/10_trained_model.yml", _CLIENTS_SNAPSHOT),
    (CLIENTS_TESTS, "tests/machine_learning/20_trained_model_serverless.yml", _CLIENTS_SNAPSHOT),
    (CLIENTS_TESTS, "tests/machine_learning/30_trained_model_stack.yml", _CLIENTS_SNAPSHOT),
    (CLIENTS_TESTS, "tests/machine_learning/clear_tm_deployment_cache.yml", _CLIENTS_SNAPSHOT),
    (CLIENTS_TESTS, "tests/machine_learning/get_memory_stats.yml", _CLIENTS_SNAPSHOT),
    (CLIENTS_TESTS, "tests/machine_learning/trained_model_aliases.yml", _CLIENTS_SNAPSHOT),
)


def local_path(source: Source, path: str) -> Path:
    return VENDORED / source.folder / path


def short_name(source: Source, path: str) -> str:
    """`<folder>/<file's path without the test-suite prefix>`, for test ids and the skip table."""
    return f"{source.folder}/{path.removeprefix(_ES_TESTS + '/').removeprefix('tests/')}"
