"""A YAML REST test file read into its parts, as Elasticsearch's `ClientYamlTestSuite` reads it.

A file is a stream of YAML documents, each one section: `setup` (run before every test),
`teardown` (after every test), or a test named by its key. A section's list may begin with
`skip` / `requires` steps: on `setup` they apply to the whole file, on a test to that test.
The clients' shared tests (elastic/elasticsearch-clients-tests) open with a document
`requires: {serverless: ..., stack: ...}` that says where the file applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PREREQUISITE_KEYS = ("skip", "requires")


@dataclass(frozen=True)
class Section:
    prerequisites: list[dict[str, Any]]  # the leading `skip` / `requires` steps, each {key: body}
    steps: list[dict[str, Any]]


@dataclass(frozen=True)
class YamlTest:
    name: str
    section: Section


@dataclass
class Suite:
    path: Path
    clients_requires: dict[str, Any] | None = None  # the clients' tests' `requires` document
    setup: Section | None = None
    teardown: Section | None = None
    tests: list[YamlTest] = field(default_factory=list)

    def steps_of(self, test: YamlTest) -> list[dict[str, Any]]:
        """Every step the test runs: setup, the test, teardown."""
        out: list[dict[str, Any]] = []
        for section in (self.setup, test.section, self.teardown):
            if section is not None:
                out.extend(section.steps)
        return out


def _section(name: str, steps: Any) -> Section:
    if not isinstance(steps, list):
        raise ValueError(f"section [{name}] is not a list of steps")
    prerequisites: list[dict[str, Any]] = []
    index = 0
    while index < len(steps) and isinstance(steps[index], dict) and next(iter(steps[index])) in PREREQUISITE_KEYS:
        prerequisites.append(steps[index])
        index += 1
    return Section(prerequisites, steps[index:])


def load_suite(path: Path) -> Suite:
    suite = Suite(path)
    for document in yaml.safe_load_all(path.read_text()):
        if document is None:
            continue
        if not isinstance(document, dict) or len(document) != 1:
            raise ValueError(f"{path}: each document must hold one section")
        ((name, body),) = document.items()
        if name == "requires" and isinstance(body, dict):
            suite.clients_requires = body
        elif name == "setup":
            suite.setup = _section(name, body)
        elif name == "teardown":
            suite.teardown = _section(name, body)
        else:
            suite.tests.append(YamlTest(str(name), _section(str(name), body)))
    return suite
