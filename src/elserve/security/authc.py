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
        """A verified user, or 401 (429 while the brake holds this user or address).

        A password verified before answers at once on the event loop; any other
        waits its turn under the brake, then pays one bcrypt on a thread."""
        user = self.users.remembered(username, password)
        if user is None:
            await asyncio.sleep(self.throttle.admit(username, address))
            try:
                user = await asyncio.to_thread(self.users.authenticate, username, password)
            except SecurityException:
                self.throttle.failed(username, address)
                raise
            self.throttle.succeeded(username, address)
        return self.principal(user)

    def api_key(self, encoded: str) -> Principal:
        return self.api_keys.authenticate(encoded)
