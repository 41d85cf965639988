"""`/_security`: users, roles, API keys and `_authenticate`, as Elasticsearch's security APIs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import APIRouter, Depends, Request, Response

from elserve.api.deps import authenticated, check, json_body, security
from elserve.api.params import parse_bool
from elserve.api.rendering import render
from elserve.errors import ActionRequestValidationException, IllegalArgumentException, ParseException
from elserve.security.api_keys import render_key
from elserve.security.authz import Principal
from elserve.security.privileges import (
    API_KEY_CREATE,
    API_KEY_GET,
    API_KEY_INVALIDATE,
    ROLE_DELETE,
    ROLE_GET,
    ROLE_PUT,
    USER_AUTHENTICATE,
    USER_CHANGE_PASSWORD,
    USER_DELETE,
    USER_GET,
    USER_PUT,
    USER_SET_ENABLED,
)
from elserve.security.roles import parse_role
from elserve.security.users import parse_change_password, parse_put_user

router = APIRouter(prefix="/_security")

_REFRESH = frozenset({"refresh"})
Caller = Annotated[Principal, Depends(authenticated())]
Writer = Annotated[Principal, Depends(authenticated(_REFRESH))]


def _names(value: str | None) -> list[str]:
    return [n for n in (value or "").split(",") if n]


class _Documented(Protocol):
    def to_doc(self) -> dict[str, Any]: ...


_D = TypeVar("_D", bound=_Documented)


def _render_named(
    request: Request,
    names: str | None,
    get: Callable[[str], _D | None],
    every: Callable[[], list[_D]],
    key: Callable[[_D], str],
) -> Response:
    """`GET /_security/user|role[/{names}]`: the named entries that exist, or every one without names;
    `{}` with a 404 when none of the named exists (`TransportGetUsersAction`, `TransportGetRolesAction`)."""
    wanted = _names(names)
    found = [e for e in (get(n) for n in wanted) if e is not None] if wanted else every()
    if wanted and not found:
        return render(request, {}, 404)
    return render(request, {key(e): e.to_doc() for e in found})


def _render_deleted(request: Request, found: bool) -> Response:
    """A user or role deletion: `found`, and a 404 when there was nothing to delete."""
    return render(request, {"found": found}, 200 if found else 404)


# -- _authenticate --------------------------------------------------------------------------------


@router.get("/_authenticate")
async def authenticate(request: Request, caller: Caller) -> Response:
    check(request, caller, USER_AUTHENTICATE, same_user=True)
    body: dict[str, Any] = {
        "username": caller.username,
        "roles": list(caller.roles),
        "full_name": caller.full_name,
        "email": caller.email,
        "metadata": caller.metadata,
        "enabled": True,
        "authentication_realm": {"name": caller.realm.name, "type": caller.realm.type},
        "lookup_realm": {"name": caller.realm.name, "type": caller.realm.type},
        "authentication_type": "api_key" if caller.api_key else "realm",
    }
    if caller.api_key is not None:
        body["api_key"] = {"id": caller.api_key.id, "name": caller.api_key.name, "managed_by": "elasticsearch"}
    return render(request, body)


# -- users ----------------------------------------------------------------------------------------


async def _change_password(request: Request, caller: Principal, username: str) -> Response:
    same_user = username == caller.username and not caller.is_api_key
    check(request, caller, USER_CHANGE_PASSWORD, same_user=same_user)
    body = await json_body(request)
    password_hash = await asyncio.to_thread(parse_change_password, body)
    security(request).users.set_password_hash(username, password_hash)
    return render(request, {})


@router.put("/user/_password")
@router.post("/user/_password")
async def change_own_password(request: Request, caller: Writer) -> Response:
    return await _change_password(request, caller, caller.username)


@router.put("/user/{username}/_password")
@router.post("/user/{username}/_password")
async def change_password(request: Request, username: str, caller: Writer) -> Response:
    return await _change_password(request, caller, username)


async def _set_enabled(request: Request, caller: Principal, username: str, enabled: bool) -> Response:
    check(request, caller, USER_SET_ENABLED)
    if username == caller.username and not caller.is_api_key:
        raise IllegalArgumentException("users may not update the enabled status of their own account")
    security(request).users.set_enabled(username, enabled)
    return render(request, {})


@router.put("/user/{username}/_enable")
@router.post("/user/{username}/_enable")
async def enable_user(request: Request, username: str, caller: Writer) -> Response:
    return await _set_enabled(request, caller, username, True)


@router.put("/user/{username}/_disable")
@router.post("/user/{username}/_disable")
async def disable_user(request: Request, username: str, caller: Writer) -> Response:
    return await _set_enabled(request, caller, username, False)


@router.put("/user/{username}")
@router.post("/user/{username}")
async def put_user(request: Request, username: str, caller: Writer) -> Response:
    check(request, caller, USER_PUT)
    body = await json_body(request)
    parsed = await asyncio.to_thread(parse_put_user, username, body)  # bcrypt: off the event loop
    created = security(request).users.put(parsed)
    return render(request, {"created": created})


@router.get("/user")
@router.get("/user/{usernames}")
async def get_users(
    request: Request,
    caller: Annotated[Principal, Depends(authenticated(frozenset({"with_profile_uid"})))],
    usernames: str | None = None,
) -> Response:
    check(request, caller, USER_GET)
    users = security(request).users
    return _render_named(request, usernames, users.get, users.all, lambda user: user.username)


@router.delete("/user/{username}")
async def delete_user(request: Request, username: str, caller: Writer) -> Response:
    check(request, caller, USER_DELETE)
    return _render_deleted(request, security(request).users.delete(username))


# -- roles ----------------------------------------------------------------------------------------


@router.put("/role/{name}")
@router.post("/role/{name}")
async def put_role(request: Request, name: str, caller: Writer) -> Response:
    check(request, caller, ROLE_PUT)
    role = parse_role(name, await json_body(request))
    created = security(request).roles.put(role)
    return render(request, {"role": {"created": created}})


@router.get("/role")
@router.get("/role/{names}")
async def get_roles(request: Request, caller: Caller, names: str | None = None) -> Response:
    check(request, caller, ROLE_GET)
    roles = security(request).roles
    return _render_named(request, names, roles.get, roles.all, lambda role: role.name)


@router.delete("/role/{name}")
async def delete_role(request: Request, name: str, caller: Writer) -> Response:
    check(request, caller, ROLE_DELETE)
    return _render_deleted(request, security(request).roles.delete(name))


# -- API keys -------------------------------------------------------------------------------------


@router.put("/api_key")
@router.post("/api_key")
async def create_api_key(request: Request, caller: Writer) -> Response:
    check(request, caller, API_KEY_CREATE, own_api_key=True)
    sec = security(request)
    created = sec.api_keys.create(await json_body(request), caller, sec.role_snapshot(caller))
    return render(request, created.to_doc())


def _owner_filter(
    caller: Principal, owner: bool, username: str | None, realm_name: str | None
) -> tuple[bool, str | None, str | None]:
    """(own keys only?, username, realm) of a get or invalidate request, as `manage_own_api_key` sees it."""
    if owner:
        realm = caller.owner_realm or caller.realm
        return True, caller.username, realm.name
    return username == caller.username, username, realm_name


def _check_key_filters(errors: list[str], verb: str, ids: bool, name: bool, owner: bool, user_or_realm: bool) -> None:
    """The cross-field rules of `GetApiKeyRequest` / `InvalidateApiKeyRequest.validate`."""
    if (ids or name) and user_or_realm:
        errors.append(
            "username or realm name must not be specified when the api key id(s) or api key name are specified"
        )
    if owner and user_or_realm:
        errors.append(f"neither username nor realm-name may be specified when {verb} owned API keys")
    if ids and name:
        errors.append("only one of [api key id(s), api key name] can be specified")


_GET_PARAMS = frozenset(
    {"id", "name", "username", "realm_name", "owner", "with_limited_by", "active_only", "with_profile_uid"}
)


@router.get("/api_key")
async def get_api_keys(request: Request, caller: Annotated[Principal, Depends(authenticated(_GET_PARAMS))]) -> Response:
    q = request.query_params
    key_id, name = q.get("id"), q.get("name")
    owner = parse_bool(q.get("owner"), False)
    errors: list[str] = []
    _check_key_filters(
        errors, "retrieving", bool(key_id), bool(name), owner, bool(q.get("username") or q.get("realm_name"))
    )
    if errors:
        raise ActionRequestValidationException(errors)
    own, username, realm = _owner_filter(caller, owner, q.get("username"), q.get("realm_name"))
    own = own or (caller.api_key is not None and key_id == caller.api_key.id)
    check(request, caller, API_KEY_GET, own_api_key=own)
    keys = security(request).api_keys.find(
        ids=[key_id] if key_id else None,
        name=name,
        username=username,
        realm_name=realm,
        active_only=parse_bool(q.get("active_only"), False),
    )
    with_limited_by = parse_bool(q.get("with_limited_by"), False)
    body = {"api_keys": [render_key(k, d, with_limited_by) for k, d in keys]}
    return render(request, body, 404 if key_id and not keys else 200)  # RestGetApiKeyAction: 404 for an unknown id


@router.delete("/api_key")
async def invalidate_api_keys(request: Request, caller: Caller) -> Response:
    body = await json_body(request)
    for key in body:
        if key not in ("ids", "id", "name", "owner", "username", "realm_name"):
            raise ParseException(f"[invalidate_api_key] unknown field [{key}]")
    ids = body.get("ids")
    if body.get("id") is not None:
        ids = [*(ids or []), body["id"]]
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise ParseException("[invalidate_api_key] failed to parse field [ids]")
    for field in ("name", "username", "realm_name"):
        if body.get(field) is not None and not isinstance(body[field], str):
            raise ParseException(f"[invalidate_api_key] failed to parse field [{field}]")
    if body.get("owner") is not None and not isinstance(body["owner"], bool):
        raise ParseException("[invalidate_api_key] failed to parse field [owner]")
    name = body.get("name")
    owner = body.get("owner") is True
    errors = []
    if ids is not None and not ids:
        errors.append("Field [ids] cannot be an empty array")
    if ids and not all(i.strip() for i in ids):
        errors.append("Field [ids] must not contain blank id")
    user_or_realm = bool(body.get("username") or body.get("realm_name"))
    if not (ids or name or owner or user_or_realm):
        errors.append(
            "One of [api key id(s), api key name, username, realm name] must be specified if [owner] flag is false"
        )
    _check_key_filters(errors, "invalidating", bool(ids), bool(name), owner, user_or_realm)
    if errors:
        raise ActionRequestValidationException(errors)
    own, username, realm = _owner_filter(caller, owner, body.get("username"), body.get("realm_name"))
    own = own or (caller.api_key is not None and ids == [caller.api_key.id])
    check(request, caller, API_KEY_INVALIDATE, own_api_key=own)
    keys = security(request).api_keys
    return render(request, keys.invalidate(keys.find(ids=ids, name=name, username=username, realm_name=realm)))
