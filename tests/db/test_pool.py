"""The pool hands out connections first come, first served, and loses none on the way."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from catalog.db.engine import create_engine
from catalog.db.session import Reader
from tests.conftest import Backend
from tests.helpers import only_on


async def waiting_for_connection(engine: AsyncEngine, count: int) -> None:
    for _ in range(200):
        if engine.sync_engine.pool.waiting == count:  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the waiters never queued")


async def test_a_returned_connection_goes_to_the_oldest_waiter_not_a_newcomer(
    backend: Backend,
) -> None:
    engine = create_engine(backend.settings(pool_size=1, max_overflow=0, pool_timeout=5))
    served: list[str] = []

    async def borrow(name: str) -> None:
        async with engine.connect():
            served.append(name)

    try:
        holder = await engine.connect()
        first_in_line = asyncio.create_task(borrow("waiter"))
        await waiting_for_connection(engine, 1)
        # The connection comes back and, before the waiter has had a chance to run, a
        # newcomer asks for one: asyncio.Queue would give it to the newcomer.
        await holder.close()
        newcomer: AsyncConnection = await engine.connect()
        served.append("newcomer")
        await newcomer.close()
        await first_in_line
        assert served == ["waiter", "newcomer"]
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_waiters_are_served_in_arrival_order_and_timeouts_lose_no_connection(
    backend: Backend,
) -> None:
    engine = create_engine(backend.settings(pool_size=2, max_overflow=0, pool_timeout=5))
    served: list[int] = []

    async def borrow(number: int) -> None:
        async with engine.connect():
            served.append(number)
            await asyncio.sleep(0.005)

    try:
        holders = [await engine.connect() for _ in range(2)]
        waiters = []
        for number in range(12):
            waiters.append(asyncio.create_task(borrow(number)))
            await waiting_for_connection(engine, number + 1)
        # One waiter gives up (a cancelled request) while the others queue.
        waiters[5].cancel()
        for holder in holders:
            await holder.close()
        await asyncio.gather(*waiters, return_exceptions=True)
        assert served == [n for n in range(12) if n != 5]
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        assert engine.sync_engine.pool.checkedin() == 2  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


@only_on("mariadb")
async def test_mariadb_sends_one_rollback_per_read_and_still_resets_open_transactions(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(backend.settings())
    reader = Reader(engine)
    rollbacks: list[object] = []

    try:
        await reader.scalar_one(text("SELECT 1"))  # connects (and warms up) first
        async with engine.connect() as connection:
            # SQLAlchemy's adapter of the driver's connection (its class differs between
            # SQLAlchemy 2.0 and 2.1).
            adapter = type((await connection.get_raw_connection()).dbapi_connection)
        rollback = adapter.rollback

        def counted(self: object) -> None:
            rollbacks.append(self)
            rollback(self)

        monkeypatch.setattr(adapter, "rollback", counted)
        await reader.all(text("SELECT id FROM products LIMIT 1"))
        # The connection's own; the pool's reset sees no open transaction and sends nothing.
        assert len(rollbacks) == 1
        # A connection handed back with a transaction open is still rolled back.
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            await driver.query("START TRANSACTION")
            assert driver.get_transaction_status()
        assert not driver.get_transaction_status()
    finally:
        await engine.dispose()


async def burst(engine: AsyncEngine, size: int) -> None:
    """`size` requests at once: each holds a connection until all have one, then returns it."""
    held = [await engine.connect() for _ in range(size)]
    for connection in held:
        await connection.exec_driver_sql("SELECT 1")
        await connection.close()


async def test_a_fixed_pool_reuses_its_connections_and_counts_survive_dispose(
    backend: Backend,
) -> None:
    engine = create_engine(backend.settings(pool_size=3, max_overflow=0))
    pool = engine.sync_engine.pool
    try:
        for _ in range(5):
            await burst(engine, 3)
        assert pool.counts.connects == 3  # type: ignore[attr-defined]
        assert pool.checkedin() == 3  # type: ignore[attr-defined]
        await engine.dispose()  # a new pool, with the old one's counts and listeners
        await burst(engine, 1)
        assert engine.sync_engine.pool.counts.connects == 4  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_an_overflow_connection_closes_when_returned(backend: Backend) -> None:
    # SQLAlchemy's overflow, as it is: why the default is a fixed pool.
    engine = create_engine(backend.settings(pool_size=1, max_overflow=1))
    pool = engine.sync_engine.pool
    try:
        await burst(engine, 2)
        assert pool.checkedin() == 1  # type: ignore[attr-defined]
        assert pool.overflow() == 0  # type: ignore[attr-defined]
        await burst(engine, 2)
        assert pool.counts.connects == 3  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
