"""Elasticsearch's exceptions: one class per error `type`, each with its HTTP status.

Every part raises these; `api/` renders them as Elasticsearch's error body
(`error.root_cause`, `error.type`, `error.reason`, `status`). The `type` is the
Java exception class name in snake_case, as Elasticsearch prints it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ElasticsearchError(Exception):
    """An error Elasticsearch would answer with: a type, a reason and a status."""

    type: str = "exception"
    status: int = 500

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        caused_by: ElasticsearchError | None = None,
        headers: dict[str, list[str]] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status
        self.caused_by = caused_by
        # HTTP headers sent with the answer and, as Elasticsearch does, listed under `error.header`.
        self.headers = headers or {}
        # Extra keys Elasticsearch puts beside `type` and `reason` (e.g. `additional_unsuccessful_credentials`).
        self.metadata = metadata or {}

    def to_dict(self) -> dict[str, Any]:
        """The cause object: `{"type", "reason", ...}` (no `root_cause`, no status)."""
        body: dict[str, Any] = {"type": self.type, "reason": self.reason}
        body.update(self.metadata)
        if self.headers:
            body["header"] = {k: v[0] if len(v) == 1 else v for k, v in self.headers.items()}
        if self.caused_by is not None:
            body["caused_by"] = self.caused_by.to_dict()
        return body

    def root_cause(self) -> ElasticsearchError:
        return self


class StatusException(ElasticsearchError):
    """`ElasticsearchStatusException`: the status is whatever the thrower chose."""

    type = "status_exception"

    def __init__(self, reason: str, status: int, **kwargs: Any) -> None:
        super().__init__(reason, status=status, **kwargs)


class IllegalArgumentException(ElasticsearchError):
    type = "illegal_argument_exception"
    status = 400


class ParseException(ElasticsearchError):
    """`ElasticsearchParseException`, e.g. a bad time value or an unreadable body."""

    type = "parse_exception"
    status = 400


class XContentParseException(ElasticsearchError):
    type = "x_content_parse_exception"
    status = 400


def unsupported_value_type(parser: str, field: str, token: str, location: str = "") -> XContentParseException:
    """`ObjectParser`'s refusal of a value whose JSON token the field is not declared for; `location` is
    the value's `line:column` when known."""
    where = f"[{location}] " if location else ""
    return XContentParseException(f"{where}[{parser}] {field} doesn't support values of type: {token}")


def field_parse_failed(
    parser: str, field: str, location: str = "", caused_by: ElasticsearchError | None = None
) -> XContentParseException:
    """`ObjectParser`'s wrapper of a field whose value does not parse (the reason, if any, as its cause)."""
    where = f"[{location}] " if location else ""
    return XContentParseException(f"{where}[{parser}] failed to parse field [{field}]", caused_by=caused_by)


class JsonParseException(ElasticsearchError):
    type = "json_parse_exception"
    status = 400


class ResourceNotFoundException(ElasticsearchError):
    type = "resource_not_found_exception"
    status = 404


class ResourceAlreadyExistsException(ElasticsearchError):
    type = "resource_already_exists_exception"
    status = 400


class RejectedExecutionException(ElasticsearchError):
    type = "es_rejected_execution_exception"
    status = 429


class ClusterBlockException(ElasticsearchError):
    """`ClusterBlockException`: its status is the block's (429 for the flood-stage watermark's)."""

    type = "cluster_block_exception"
    status = 429


class SecurityException(ElasticsearchError):
    type = "security_exception"
    status = 403


class ClassCastException(ElasticsearchError):
    """A value of the wrong JSON type where Elasticsearch casts blindly.

    Elasticsearch answers these with a 500; elserve keeps its type and text but
    answers 400, since the fault is the request's.
    """

    type = "class_cast_exception"
    status = 400


class NullPointerException(ElasticsearchError):
    """A null where Elasticsearch expects a value (a 500 there, a 400 here: the request is at fault)."""

    type = "null_pointer_exception"
    status = 400


class IllegalStateException(ElasticsearchError):
    """Java's `IllegalStateException`, seen as the cause of a parse error (its root answer is 400)."""

    type = "illegal_state_exception"
    status = 400


class NumberFormatException(ElasticsearchError):
    type = "number_format_exception"
    status = 400


class ValidationException(ElasticsearchError):
    """`ValidationException`: several messages, numbered into one reason."""

    type = "validation_exception"
    status = 400

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors = list(errors)
        reason = "Validation Failed: " + "".join(f"{i}: {e};" for i, e in enumerate(self.errors, 1))
        super().__init__(reason)


class ActionRequestValidationException(ValidationException):
    type = "action_request_validation_exception"


class ValidationErrors:
    """Collects validation messages while parsing, then raises them once (as Elasticsearch does)."""

    def __init__(self, exception: type[ValidationException] = ValidationException) -> None:
        self.messages: list[str] = []
        self._exception = exception

    def add(self, message: str) -> None:
        self.messages.append(message)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def raise_if_any(self) -> None:
        if self.messages:
            raise self._exception(self.messages)
