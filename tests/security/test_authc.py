"""`Security.basic`: the brake is decided before the password is looked at, and concurrent attempts with
one credential share one bcrypt check (a real store and real bcrypt; bcrypt calls are counted)."""

import asyncio
from pathlib import Path

import pytest

from elserve.errors import SecurityException
from elserve.security import users as users_module
from elserve.security.authc import Security
from elserve.security.throttle import LoginThrottle
from elserve.security.users import parse_put_user
from elserve.store import SqliteRepository
from tests.support.clock import Clock


@pytest.fixture
def security(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Security:
    clock = Clock()  # stands still: the brake's decisions do not depend on how fast this machine runs
    sec = Security(
        SqliteRepository(tmp_path / "s.db"),
        LoginThrottle(free_failures=2, base_delay_s=0.05, max_delay_s=0.1, clock=clock),
    )
    sec.users.put(parse_put_user("ann", {"password": "ann-password", "roles": []}))
    sec.bcrypt_calls = 0
    real = users_module.verify_password

    def counted(password: str, hashed: str) -> bool:
        sec.bcrypt_calls += 1
        return real(password, hashed)

    monkeypatch.setattr(users_module, "verify_password", counted)
    return sec


async def _answer(security: Security, password: str, address: str = "10.0.0.1") -> int:
    try:
        await security.basic("ann", password, address)
    except SecurityException as exc:
        return exc.status
    return 200


def test_a_cached_password_gets_the_braked_answer_too(security: Security) -> None:
    """Issue 24 row 2: the right password was answered from the cache before the brake was consulted."""
    wrong: list[int] = []

    async def run() -> None:
        assert await _answer(security, "ann-password", "10.0.0.2") == 200  # verified once: now cached
        while 429 not in wrong and len(wrong) < 10:
            wrong.append(await _answer(security, f"guess-{len(wrong)}"))
        assert await _answer(security, "ann-password") == 429  # the same answer as the wrong one's
        assert await _answer(security, "ann-password", "10.0.0.3") == 200  # another address is not braked

    asyncio.run(run())
    assert wrong == [401, 401, 401, 429]  # two free failures, one turn of the brake, then refused
    assert security.bcrypt_calls == 1 + 3


def test_concurrent_attempts_with_one_credential_share_one_check(security: Security) -> None:
    async def run() -> list[int]:
        return list(await asyncio.gather(*(_answer(security, "ann-password") for _ in range(20))))

    assert asyncio.run(run()) == [200] * 20
    assert security.bcrypt_calls == 1


def test_concurrent_distinct_guesses_start_no_more_checks_than_the_free_failures(security: Security) -> None:
    async def run() -> list[int]:
        return list(await asyncio.gather(*(_answer(security, f"guess-{i}") for i in range(20))))

    answers = asyncio.run(run())
    assert answers.count(401) == 3 and answers.count(429) == 17  # two free failures and one turn
    assert security.bcrypt_calls == 3
