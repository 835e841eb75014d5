"""The pool hands out connections first come, first served, and loses none on the way."""

import asyncio

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from catalog.db.engine import create_engine
from tests.conftest import Backend


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
