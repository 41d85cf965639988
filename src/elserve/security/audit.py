"""The security audit trail: one log line per refused request, on logger `elserve.audit`.

Fields follow Elasticsearch's logfile audit events (`event.action`
`authentication_failed` / `access_denied`, `user.name`, `origin.address`,
`url.path`, `action`). Credentials never appear: only the user name a client
claimed, or an API key's id.
"""

from __future__ import annotations

import logging

import orjson

from elserve.security.authz import Principal

log = logging.getLogger("elserve.audit")


def _emit(event: dict[str, object]) -> None:
    log.warning("%s", orjson.dumps({"type": "audit", "origin.type": "rest", **event}).decode())


def authentication_failed(user: str | None, address: str, method: str, path: str, status: int) -> None:
    event: dict[str, object] = {"event.action": "authentication_failed"}
    if user:
        event["user.name"] = user
    _emit({**event, "origin.address": address, "request.method": method, "url.path": path, "status": status})


def access_denied(principal: Principal, action: str, address: str, method: str, path: str) -> None:
    event: dict[str, object] = {"event.action": "access_denied", "user.name": principal.username}
    if principal.api_key is not None:
        event["apikey.id"] = principal.api_key.id
    else:
        event["user.roles"] = list(principal.roles)
    _emit({**event, "origin.address": address, "request.method": method, "url.path": path, "action": action})
