"""Runs the steps of a YAML REST test against a server through the official client's
`perform_request`, as Elasticsearch's runner runs them (`DoSection.java`, `Assertion.java`,
`ClientYamlTestExecutionContext.java` in elastic/elasticsearch `test/yaml-rest-runner`).

A `do` step calls one API (`apis.py`) and then checks, as `DoSection.execute` does:
- an error status (>= 400) is a failure unless `catch` names it: `bad_request` 400,
  `unauthorized` 401, `forbidden` 403, `missing` 404, `request_timeout` 408, `conflict` 409,
  `gone` 410, `unavailable` 503, `request` any other error status, or `/regex/`: any error status
  whose `error` object, as Java prints it, the regex finds; `catch: param` sends nothing (a client
  must refuse the call itself);
- a success is a failure when `catch` expected an error;
- a success must carry `X-Elastic-Product: Elasticsearch`, and, when `strict_warnings`, exactly the
  `Warning` headers the step expects (`warnings`, `warnings_regex`) plus any it allows
  (`allowed_warnings`, `allowed_warnings_regex`). The clients' shared tests are run by the
  clients' runners, which do not fail on a warning nobody expected: their policy is lenient.
The last response's body is stashed as `body`.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import ApiError, Elasticsearch

from tests.yaml_rest import assertions
from tests.yaml_rest.apis import build_request
from tests.yaml_rest.stash import Stash, evaluate, set_from, to_text

CATCHES = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "missing": 404,
    "request_timeout": 408,
    "conflict": 409,
    "gone": 410,
    "unavailable": 503,
}
_NAMED_STATUSES = {400, 401, 403, 404, 408, 409, 410}
# `HeaderWarning.WARNING_HEADER_PATTERN`: `299 Elasticsearch-<version>-<hash> "<text>"[ "<date>"]`.
_WARNING = re.compile(r'299 \S+ "((?:[^"\\]|\\.)*)"(?: "[^"]*")?')
_DO_KEYS = ("catch", "headers", "warnings", "warnings_regex", "allowed_warnings", "allowed_warnings_regex")
STEP_KINDS = frozenset(
    {"do", "set", "match", "is_true", "is_false", "length", "exists", "not_exists", *assertions.ORDER_ASSERTIONS}
)


@dataclass
class Response:
    status: int
    body: Any
    headers: Mapping[str, str]


def warning_texts(headers: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(texts of the well-formed `Warning` headers, the headers that are not well formed)."""
    value = headers.get("warning") or headers.get("Warning")
    if not value:
        return [], []
    texts = [m.group(1).replace('\\"', '"').replace("\\\\", "\\") for m in _WARNING.finditer(value)]
    leftover = _WARNING.sub("", value).strip(" ,")
    return texts, ([leftover] if leftover else [])


@dataclass
class Runner:
    client: Elasticsearch
    default_headers: dict[str, str]
    strict_warnings: bool = True
    stash: Stash = field(default_factory=Stash)
    last: Response | None = None

    # -- steps -------------------------------------------------------------------------------------

    def run(self, steps: list[dict[str, Any]]) -> None:
        for step in steps:
            ((kind, spec),) = step.items()
            if kind == "do":
                self.do(spec)
            elif kind == "set":
                for path, name in spec.items():
                    set_from(self._body(), path, name, self.stash)
            elif kind in ("is_true", "is_false", "exists", "not_exists"):
                self._truth(kind, spec)
            else:
                ((path, expected),) = spec.items()
                actual = self.actual(path)
                expected = self.stash.replace(expected)
                if kind == "match":
                    assertions.assert_match(path, actual, expected)
                elif kind == "length":
                    assertions.assert_length(path, actual, expected)
                elif kind in assertions.ORDER_ASSERTIONS:
                    assertions.assert_order(kind, path, actual, expected)
                else:
                    raise NotImplementedError(f"step [{kind}]")

    def _truth(self, kind: str, path: str) -> None:
        actual = self.actual(path)
        if kind == "is_true":
            assertions.assert_is_true(path, actual)
        elif kind == "is_false":
            assertions.assert_is_false(path, actual)
        elif kind == "exists":
            assert actual is not None, f"field [{path}] does not exist"
        else:
            assert actual is None, f"field [{path}] exists: {to_text(actual)}"

    def _body(self) -> Any:
        assert self.last is not None, "no response yet"
        return self.last.body

    def actual(self, path: str) -> Any:
        """The value an assertion checks: a stashed value, the whole body, or a path in it."""
        if path == "$body":
            return self._body()
        if self.stash.is_key(path):
            return self.stash.get(path)
        return evaluate(self._body(), path, self.stash)

    # -- do ----------------------------------------------------------------------------------------

    def do(self, spec: dict[str, Any]) -> None:
        apis = [k for k in spec if k not in _DO_KEYS and k != "node_selector"]
        if len(apis) != 1:
            raise ValueError(f"a do section calls exactly one API, not {apis}")
        name = apis[0]
        catch = spec.get("catch")
        if catch == "param":
            return  # `DoSection.execute`: a client must refuse the call before sending it
        response = self.call(name, dict(spec[name] or {}), dict(spec.get("headers") or {}))
        self.last = response
        self.stash.put("body", response.body)
        if response.status >= 400:
            self._check_error(name, catch, response)
            return
        assert not catch, f"expected [{catch}] but api [{name}] returned [{response.status}] [{response.body}]"
        product = response.headers.get("x-elastic-product") or response.headers.get("X-Elastic-Product")
        assert product == "Elasticsearch", f"api [{name}]: X-Elastic-Product is [{product}]"
        self._check_warnings(name, spec, response)

    def call(self, name: str, args: dict[str, Any], headers: dict[str, Any]) -> Response:
        body = args.pop("body", None)
        params = {k: _param_text(self.stash.replace(v)) for k, v in args.items()}
        method, path, query = build_request(name, params)
        request_headers = dict(self.default_headers)
        if body is not None:
            body = self.stash.replace(_parse_body(body))
            request_headers["content-type"] = "application/json"
        for key, value in headers.items():
            request_headers = {k: v for k, v in request_headers.items() if k.lower() != key.lower()}
            request_headers[key] = str(self.stash.replace(value))
        with warnings.catch_warnings():
            # The client turns `Warning` headers into Python warnings; the runner reads the headers.
            warnings.simplefilter("ignore")
            try:
                result = self.client.perform_request(
                    method,
                    path,
                    params=query or None,
                    headers=request_headers,
                    body=json.dumps(body) if body is not None else None,
                )
            except ApiError as error:
                return Response(error.meta.status, error.body, error.meta.headers)
        return Response(result.meta.status, result.body, result.meta.headers)

    def _check_error(self, name: str, catch: str | None, response: Response) -> None:
        said = f"api [{name}] returned [{response.status}] [{json.dumps(response.body)}]"
        assert catch, f"expected [2xx] status code but {said}"
        if catch in CATCHES:
            assert response.status == CATCHES[catch], f"expected [{CATCHES[catch]}] status code but {said}"
        elif catch == "request":
            assert response.status not in _NAMED_STATUSES, f"expected [4xx|5xx] status code but {said}"
        elif len(catch) > 2 and catch.startswith("/") and catch.endswith("/"):
            error = response.body.get("error") if isinstance(response.body, dict) else None
            assert error is not None, f"error was expected in the response: {said}"
            assert re.search(catch[1:-1], to_text(error)), (
                f"the error message was expected to match the provided regex but didn't: {catch} ; {said}"
            )
        else:
            raise NotImplementedError(f"catch value [{catch}] not supported")

    def _check_warnings(self, name: str, spec: dict[str, Any], response: Response) -> None:
        texts, malformed = warning_texts(response.headers)
        expected = list(spec.get("warnings") or [])
        expected_regex = [re.compile(p) for p in spec.get("warnings_regex") or []]
        allowed = set(spec.get("allowed_warnings") or [])
        allowed_regex = [re.compile(p) for p in spec.get("allowed_warnings_regex") or []]
        unexpected: list[str] = []
        for text in texts:
            if text in allowed:
                continue
            if text in expected:
                expected.remove(text)
                continue
            matched = next((p for p in expected_regex if p.fullmatch(text)), None)
            if matched is not None:
                expected_regex.remove(matched)
                continue
            if any(p.fullmatch(text) for p in allowed_regex):
                continue
            unexpected.append(text)
        problems = []
        if expected:
            problems.append(f"did not get expected warning headers {expected}")
        if expected_regex:
            problems.append(f"no warning header matched {[p.pattern for p in expected_regex]}")
        if self.strict_warnings and unexpected:
            problems.append(f"got unexpected warning headers {unexpected}")
        if self.strict_warnings and malformed:
            problems.append(f"got unmatched warning headers {malformed}")
        assert not problems, f"api [{name}]: " + "; ".join(problems)


def _param_text(value: Any) -> str:
    """A parameter as the YAML parser's `text()` gives it."""
    if isinstance(value, list):
        return ",".join(_param_text(v) for v in value)
    return to_text(value)


def _parse_body(body: Any) -> Any:
    """A body given as a string is JSON (`DoSection` parses it before sending)."""
    if isinstance(body, str):
        return json.loads(body)
    return body
