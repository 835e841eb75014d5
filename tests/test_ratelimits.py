"""Rate limits of sign-in and sign-up: 429 with Retry-After, per client address and per
account, shared through a real Redis, and not fooled by forwarded headers."""

import asyncio
import os
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from catalog.cli import app as cli
from catalog.config import Settings, get_settings
from tests.conftest import IN_CI, Backend
from tests.helpers import assert_problem, only_on, serving
from tests.servers import catalog_server, free_port

REDIS_URL = os.environ.get("CATALOG_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
NO_AUTH = {"Authorization": ""}
UNLIMITED = {
    "rate_limit_login_per_address": "",
    "rate_limit_login_per_account_and_address": "",
    "rate_limit_login_per_account": "",
    "rate_limit_signup_per_address": "",
    "rate_limit_signup_per_account": "",
}


def _redis_answers() -> bool:
    host_port = REDIS_URL.removeprefix("redis://").split("/")[0]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    if not _redis_answers():
        message = f"Redis not reachable at {REDIS_URL}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the rate limit tests need it)", pytrace=False)
        pytest.skip(message)
    return REDIS_URL


async def _sign_in(client: httpx.AsyncClient, email: str, **headers: str) -> httpx.Response:
    return await client.post(
        "/auth/token",
        data={"username": email, "password": "wrong password"},
        headers={**NO_AUTH, **headers},
    )


def _limited(settings: Settings, **limits: str) -> Settings:
    return settings.model_copy(update={**UNLIMITED, **limits})


def _rebuilt(settings: Settings, **changes: object) -> Settings:
    # model_copy runs no validators: rebuild, so the settings are checked as at start.
    return Settings(**{**settings.model_dump(), **changes})


async def test_sign_ins_past_the_limit_of_an_account_from_one_address_are_429(
    settings: Settings,
) -> None:
    limited = _limited(settings, rate_limit_login_per_account_and_address="3/minute")
    async with serving(limited) as (_, client):
        for _ in range(3):
            assert_problem(await _sign_in(client, "Renee@Example.com"), 401)
        # The same account however it is spelled: the limit counts canonical emails.
        refused = await _sign_in(client, "renee@EXAMPLE.com")
        other_account = await _sign_in(client, "someone@example.com")

    body = assert_problem(refused, 429)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "3 per 1 minute" in body["detail"]
    assert_problem(other_account, 401)


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def test_a_flood_from_many_addresses_slows_an_account_but_never_locks_its_owner_out(
    settings: Settings,
) -> None:
    flooded = _limited(
        settings,
        rate_limit_login_per_account_and_address="3/minute",
        rate_limit_login_per_account="2/minute",
        rate_limit_login_slowdown=0.01,
        forwarded_allow_ips="127.0.0.1",
    )
    async with serving(flooded) as (_, client):
        made = await client.post(
            "/users",
            json={"email": "owner@example.com", "password": "the right password"},
            headers=NO_AUTH,
        )
        assert made.status_code == 201, made.text
        guesses = [
            await _sign_in(client, "owner@example.com", **_from(f"203.0.113.{n}"))
            for n in range(1, 11)
        ]
        owner = await client.post(
            "/auth/token",
            data={"username": "owner@example.com", "password": "the right password"},
            headers={**NO_AUTH, **_from("198.51.100.7")},
        )
    # Ten wrong passwords from ten addresses: each answered, slowed past the second,
    # none refused; and the owner, elsewhere, gets in.
    assert [guess.status_code for guess in guesses] == [401] * 10
    assert owner.status_code == 200, owner.text


async def test_sign_ins_past_an_accounts_limit_take_turns(settings: Settings) -> None:
    slowdown = 0.2
    slowed = _limited(
        settings,
        rate_limit_login_per_account="1/minute",
        rate_limit_login_slowdown=slowdown,
    )
    async with serving(slowed) as (_, client):
        await _sign_in(client, "turns@example.com")  # the one within the limit
        started = time.monotonic()
        answers = await asyncio.gather(*(_sign_in(client, "turns@example.com") for _ in range(5)))
        took = time.monotonic() - started
    assert [answer.status_code for answer in answers] == [401] * 5
    # One at a time, each after the slowdown: at least five of them end to end (a
    # lower bound, which a busy machine only makes easier to meet).
    assert took >= 5 * slowdown


async def test_sign_ins_and_sign_ups_past_the_per_address_limit_are_429(
    settings: Settings,
) -> None:
    limited = _limited(
        settings, rate_limit_login_per_address="2/minute", rate_limit_signup_per_address="1/hour"
    )
    async with serving(limited) as (_, client):
        first = [await _sign_in(client, f"user{n}@example.com") for n in range(3)]
        sign_ups = [
            await client.post(
                "/users",
                json={"email": f"new-{uuid.uuid4().hex}@example.com", "password": "correct horse"},
                headers=NO_AUTH,
            )
            for _ in range(2)
        ]

    assert [response.status_code for response in first] == [401, 401, 429]
    assert sign_ups[0].status_code == 201
    assert_problem(sign_ups[1], 429)
    assert int(sign_ups[1].headers["retry-after"]) > 60  # an hourly window


async def test_workers_and_hosts_share_the_limit_through_redis(
    settings: Settings, redis_url: str
) -> None:
    shared = _rebuilt(
        _limited(settings, rate_limit_login_per_account_and_address="3/minute"),
        rate_limit_storage_url=redis_url,
        rate_limit_key_prefix=f"catalog-test-{uuid.uuid4().hex}",
    )
    async with serving(shared) as (_, one), serving(shared) as (_, other):
        answers = [
            await _sign_in(one, "shared@example.com"),
            await _sign_in(other, "shared@example.com"),
            await _sign_in(one, "shared@example.com"),
            await _sign_in(other, "shared@example.com"),
        ]
    assert [response.status_code for response in answers] == [401, 401, 401, 429]


async def test_limits_hold_in_each_worker_when_redis_is_unreachable(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    nothing_there = _rebuilt(
        _limited(settings, rate_limit_login_per_account_and_address="2/minute"),
        rate_limit_storage_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    with caplog.at_level("WARNING", logger="catalog.ratelimits"):
        async with serving(nothing_there) as (_, client):
            answers = [await _sign_in(client, "down@example.com") for _ in range(4)]
    # Counted in the worker instead: limited as before, no 500, and said once.
    assert [response.status_code for response in answers] == [401, 401, 429, 429]
    said = [record for record in caplog.records if "Redis failed" in record.getMessage()]
    assert len(said) == 1


async def test_a_hanging_redis_costs_one_timeout_not_one_per_sign_in(settings: Settings) -> None:
    connections = 0

    async def accept_and_say_nothing(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal connections
        connections += 1
        await reader.read()  # until the client gives up and closes
        writer.close()

    hanging = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = hanging.sockets[0].getsockname()[1]
    slow = _rebuilt(
        _limited(settings, rate_limit_login_per_account_and_address="2/minute"),
        rate_limit_storage_url=f"redis://127.0.0.1:{port}/0",
    )
    try:
        async with serving(slow) as (_, client):
            answers = [await _sign_in(client, "hang@example.com") for _ in range(6)]
    finally:
        hanging.close()
        await hanging.wait_closed()
    assert [response.status_code for response in answers] == [401, 401, 429, 429, 429, 429]
    # Six sign-ins, and Redis was asked once (twice if 5 s passed between two of them).
    assert 1 <= connections < 6


@only_on("sqlite")
@pytest.mark.parametrize(("trusted", "expected"), [("", 429), ("127.0.0.1", 401)])
def test_forwarded_addresses_count_only_from_configured_proxies(
    backend: Backend, tmp_path: Path, trusted: str, expected: int
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'limits.db'}"
    os.environ["CATALOG_DATABASE_URL"] = url
    try:
        get_settings.cache_clear()
        assert CliRunner().invoke(cli, ["db", "upgrade"]).exit_code == 0
    finally:
        del os.environ["CATALOG_DATABASE_URL"]
        get_settings.cache_clear()
    env = {
        "CATALOG_DATABASE_URL": url,
        "CATALOG_RATE_LIMIT_LOGIN_PER_ADDRESS": "2/minute",
        "CATALOG_RATE_LIMIT_LOGIN_PER_ACCOUNT": "",
        "CATALOG_FORWARDED_ALLOW_IPS": trusted,
    }
    with catalog_server(env, tmp_path / "serve.log") as server:

        async def attempts() -> list[int]:
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
                return [
                    (
                        await _sign_in(client, f"u{n}@example.com", **{"X-Forwarded-For": ip})
                    ).status_code
                    for n, ip in enumerate(["203.0.113.1", "203.0.113.2", "203.0.113.3"])
                ]

        statuses = asyncio.run(attempts())
    # Untrusted, every attempt is 127.0.0.1's; trusted, each address has its own count.
    assert statuses == [401, 401, expected]
