"""sqlite+inline, catalog's SQLite dialect: sqlite3 on the event loop, lock waits awaited."""

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.config import Settings
from catalog.db.engine import create_engine


@asynccontextmanager
async def engine_on(path: Path, busy_timeout: float) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(
        Settings(database_url=f"sqlite+inline:///{path}", sqlite_busy_timeout=busy_timeout)
    )
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def write_lock_held(path: Path) -> AsyncIterator[sqlite3.Connection]:
    """Another process's writer, as SQLite sees it: a connection of its own in a
    write transaction."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield holder
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()


async def count_ticks(ticks: list[float]) -> None:
    while True:
        await asyncio.sleep(0.01)
        ticks.append(time.monotonic())


async def test_a_write_waits_for_the_lock_without_blocking_the_loop(tmp_path: Path) -> None:
    async with engine_on(tmp_path / "lock.db", busy_timeout=5) as engine:
        async with write_lock_held(tmp_path / "lock.db") as holder:
            ticks: list[float] = []
            ticker = asyncio.create_task(count_ticks(ticks))

            async def release_later() -> None:
                await asyncio.sleep(0.3)
                holder.execute("ROLLBACK")

            releaser = asyncio.create_task(release_later())
            started = time.monotonic()
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO t VALUES (1)"))
            waited = time.monotonic() - started
            ticker.cancel()
            await releaser
        # It waited for the other writer, and the loop ran all along (a blocking wait
        # would have let no tick through until the lock was gone).
        assert 0.25 <= waited < 3
        assert len([tick for tick in ticks if tick < started + 0.25]) >= 10
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one() == 1


async def test_a_write_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    async with engine_on(tmp_path / "timeout.db", busy_timeout=0.3) as engine:
        async with write_lock_held(tmp_path / "timeout.db"):
            started = time.monotonic()
            with pytest.raises(Exception, match="database is locked"):
                async with engine.begin() as connection:
                    await connection.execute(text("INSERT INTO t VALUES (1)"))
            assert 0.3 <= time.monotonic() - started < 2
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_cancelled_wait_stops_at_once_and_leaks_nothing(tmp_path: Path) -> None:
    async with engine_on(tmp_path / "cancel.db", busy_timeout=30) as engine:
        async with write_lock_held(tmp_path / "cancel.db"):

            async def insert() -> None:
                async with engine.begin() as connection:
                    await connection.execute(text("INSERT INTO t VALUES (1)"))

            waiting = asyncio.create_task(insert())
            await asyncio.sleep(0.2)
            assert not waiting.done()
            started = time.monotonic()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert time.monotonic() - started < 0.5
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        async with engine.begin() as connection:  # the lock is free: nothing was kept
            await connection.execute(text("INSERT INTO t VALUES (2)"))
            rows = (await connection.execute(text("SELECT x FROM t"))).scalars().all()
        assert rows == [2]
