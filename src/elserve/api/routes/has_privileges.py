"""`GET|POST /_security/user/_has_privileges`: what the caller may do (`RestHasPrivilegesAction`).

Every authenticated caller may ask about itself. Its own router, mounted before `/_security`'s,
whose `/_security/user/{name}` would take `_has_privileges` for a user name.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from elserve.api.deps import authenticated, json_body
from elserve.api.rendering import render
from elserve.errors import ActionRequestValidationException, ParseException
from elserve.security.authz import Principal
from elserve.security.has_privileges import holds, is_superuser

router = APIRouter(prefix="/_security/user")
Caller = Annotated[Principal, Depends(authenticated())]

_FIELDS = ("cluster", "index", "application")


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ParseException(f"[{field}] must be an array of strings")
    return value


@router.get("/_has_privileges")
@router.post("/_has_privileges")
async def has_privileges(request: Request, caller: Caller) -> Response:
    body = await json_body(request) or {}
    unknown = [k for k in body if k not in _FIELDS]
    if unknown:
        raise ParseException(f"failed to parse privileges check. unexpected field [{unknown[0]}]")
    cluster = {name: holds(caller, name) for name in _strings(body.get("cluster", []), "cluster")}
    superuser = is_superuser(caller)
    index: dict[str, dict[str, bool]] = {}
    for entry in body.get("index", []):
        if not isinstance(entry, dict):
            raise ParseException("[index] must be an array of objects")
        for name in _strings(entry.get("names", []), "names"):
            index.setdefault(name, {}).update(
                dict.fromkeys(_strings(entry.get("privileges", []), "privileges"), superuser)
            )
    application: dict[str, dict[str, dict[str, bool]]] = {}
    for entry in body.get("application", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("application"), str):
            raise ParseException("[application] must be an array of objects with an [application]")
        resources = application.setdefault(entry["application"], {})
        for resource in _strings(entry.get("resources", []), "resources"):
            resources.setdefault(resource, {}).update(
                dict.fromkeys(_strings(entry.get("privileges", []), "privileges"), superuser)
            )
    if not cluster and not index and not application:
        raise ActionRequestValidationException(["must specify at least one privilege"])
    answers = [*cluster.values(), *(v for p in index.values() for v in p.values())]
    answers += [v for r in application.values() for p in r.values() for v in p.values()]
    body_out = {
        "username": caller.username,
        "has_all_requested": all(answers),
        "cluster": cluster,
        "index": index,
        "application": application,
    }
    return render(request, body_out)
