"""Authentication: `Basic` credentials against the native realm (with the login brake) and
`ApiKey` credentials, each ending in a `Principal`."""

from __future__ import annotations

import asyncio

from elserve.errors import SecurityException
from elserve.security.api_keys import ApiKeyStore
from elserve.security.authz import NATIVE, RESERVED, Principal
from elserve.security.roles import RoleDescriptor, RoleStore
from elserve.security.throttle import LoginThrottle
from elserve.security.users import User, UserStore
from elserve.store import Repository


class Security:
    """The realm's parts over one store: users, roles, API keys, and the login brake."""

    def __init__(self, repo: Repository, throttle: LoginThrottle | None = None) -> None:
        self.users = UserStore(repo)
        self.roles = RoleStore(repo)
        self.api_keys = ApiKeyStore(repo)
        self.throttle = throttle or LoginThrottle()
        self._checks: dict[tuple[str, str], asyncio.Future[User]] = {}  # password checks running

    def principal(self, user: User) -> Principal:
        roles = self.roles.resolve(user.roles)
        return Principal.for_roles(
            user.username,
            user.roles,
            {r.name: r.cluster for r in roles},
            realm=RESERVED if user.reserved else NATIVE,
            full_name=user.full_name,
            email=user.email,
            metadata=user.to_doc()["metadata"],
        )

    def role_snapshot(self, principal: Principal) -> list[RoleDescriptor]:
        """The caller's roles now: what a new API key is limited by."""
        return self.roles.resolve(principal.roles)

    async def basic(self, username: str, password: str, address: str) -> Principal:
        """A verified user, or 401 (429 while the brake holds this user at this address).

        The brake is decided first, from the user and address alone (throttle.py); only then is the
        password looked at: a password verified before answers from the cache, any other pays one
        bcrypt on a thread."""
        wait = self.throttle.admit(username, address)
        if wait:
            await asyncio.sleep(wait)
        user = self.users.remembered(username, password)
        if user is None:
            user = await self._check(username, password, address, waited=wait > 0)
        self.throttle.succeeded(username, address)
        return self.principal(user)

    async def _check(self, username: str, password: str, address: str, waited: bool) -> User:
        """One bcrypt check per credential at a time: attempts with the same user and password while it
        runs share its outcome (a client's first burst of requests costs one check, not one each)."""
        key = (username, password)
        running = self._checks.get(key)
        if running is None:
            self.throttle.checking(username, address, waited=waited)
            running = asyncio.ensure_future(asyncio.to_thread(self.users.authenticate, username, password))
            self._checks[key] = running

            def done(task: asyncio.Future[User]) -> None:
                # Counted when the check ends, even if the request that started it is gone meanwhile.
                self._checks.pop(key, None)
                failed = not task.cancelled() and isinstance(task.exception(), SecurityException)
                self.throttle.checked(username, address, failed=failed)

            running.add_done_callback(done)
        return await asyncio.shield(running)

    def api_key(self, encoded: str) -> Principal:
        return self.api_keys.authenticate(encoded)
