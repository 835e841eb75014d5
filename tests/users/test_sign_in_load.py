"""Sign-in under load: no connection held while a password is checked, a bounded number
of hashes at once, and rate limits per client address and per account."""

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.config import Settings
from catalog.users import security
from tests.conftest import Backend
from tests.helpers import assert_problem, create_user, product_payload, until

NO_AUTH = {"Authorization": ""}


class ParkedHasher:
    """An argon2 stand-in that holds each check until released, to look inside one."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def hash(self, password: str) -> str:
        self.entered.release()
        self.release.wait(10)
        return "parked"

    def verify(self, password: str, password_hash: str) -> bool:
        self.entered.release()
        self.release.wait(10)
        return False

    async def wait_until_inside(self, count: int = 1) -> None:
        for _ in range(count):
            assert await asyncio.to_thread(self.entered.acquire, True, 10)


@pytest.fixture
def parked(monkeypatch: pytest.MonkeyPatch) -> Iterator[ParkedHasher]:
    hasher = ParkedHasher()
    monkeypatch.setattr(security, "_hasher", lambda: hasher)
    monkeypatch.setattr(security, "_hash_of_nobody", lambda: "nobody")
    yield hasher
    hasher.release.set()


@pytest.fixture
def settings(backend: Backend) -> Settings:
    # One connection, one hash at a time with one more waiting: any connection held
    # while hashing, or any hash beyond the bound, shows at once.
    return backend.settings(
        pool_size=1,
        max_overflow=0,
        pool_timeout=1,
        password_hash_concurrency=1,
        password_hash_queue=1,
    )


def _sign_in(client: httpx.AsyncClient, email: str) -> "asyncio.Task[httpx.Response]":
    return asyncio.create_task(
        client.post("/auth/token", data={"username": email, "password": "wrong!"}, headers=NO_AUTH)
    )


async def test_no_connection_is_held_while_a_password_is_checked(
    app: FastAPI, engine: AsyncEngine, client: httpx.AsyncClient, parked: ParkedHasher
) -> None:
    product = (await client.post("/products", json=product_payload())).json()
    await create_user(engine, "known@example.com")

    for email in ("known@example.com", "nobody@example.com"):
        signing_in = _sign_in(client, email)
        await parked.wait_until_inside()

        # The pool's only connection is free: reads go on at full speed.
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        read = await asyncio.wait_for(client.get(f"/products/{product['id']}"), 1)
        assert read.status_code == 200
        parked.release.set()
        assert_problem(await signing_in, 401)
        parked.release.clear()


async def test_sign_ins_beyond_the_hashing_bound_are_503_at_once(
    app: FastAPI, engine: AsyncEngine, client: httpx.AsyncClient, parked: ParkedHasher
) -> None:
    await create_user(engine, "known@example.com")
    running = _sign_in(client, "known@example.com")
    await parked.wait_until_inside()
    waiting = _sign_in(client, "known@example.com")  # the one place in the queue
    hasher = app.state.password_hasher
    await until(lambda: hasher.admitted == 2, within=5, what="the second sign-in to queue")

    refused = await asyncio.wait_for(
        client.post(
            "/users",
            json={"email": "new@example.com", "password": "correct horse"},
            headers=NO_AUTH,
        ),
        1,
    )

    assert_problem(refused, 503)
    assert refused.headers["retry-after"] == "1"
    assert not running.done()
    parked.release.set()
    assert_problem(await running, 401)
    assert_problem(await waiting, 401)
