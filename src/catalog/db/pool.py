"""A pool that reports what it does: checkouts, waits, timeouts, connects.

The pool counts; it does not know who listens. `catalog.metrics` subscribes to its
waits (`MeteredPool.listeners`) and to SQLAlchemy's pool events.
"""

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Dialect, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, Pool, PoolProxiedConnection
from sqlalchemy.util.concurrency import await_only
from sqlalchemy.util.queue import Empty, Full

__all__ = [
    "CheckoutListener",
    "FairQueue",
    "MeteredPool",
    "PoolCounts",
    "PoolSnapshot",
    "count_pool_events",
    "ping_idle_connections",
    "pool_snapshot",
]

_CHECKIN_KEY = "catalog.checked_in_at"


_T = TypeVar("_T")


class FairQueue(Generic[_T]):
    """The pool's idle connections, handed out strictly first come, first served.

    SQLAlchemy's asyncio pool keeps them in an `asyncio.Queue`. When a connection comes
    back it wakes the oldest waiter, but until that waiter runs, any request arriving
    meanwhile takes the connection first; the waiter finds the queue empty again and
    goes to the back of the line. Under load some requests then wait many times longer
    than others, and some past the pool timeout (docs/architecture.md has the figures,
    and why this beats a FIFO gate in front of the stock queue). Here a returned
    connection goes straight to the oldest waiter, and nobody takes an idle one while
    anyone waits.

    Installed through SQLAlchemy's private `_queue_class`, with the interface of its
    `QueueCommon`; called from the pool's sync code inside SQLAlchemy's greenlet, hence
    `await_only`. tests/db/test_sqlalchemy_contract.py pins both.
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo
        self._idle: deque[_T] = deque()
        self._waiters: deque[asyncio.Future[_T]] = deque()

    def empty(self) -> bool:
        return not self._idle

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._idle)

    def qsize(self) -> int:
        return len(self._idle)

    def put_nowait(self, item: _T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # else it timed out or was cancelled meanwhile
                waiter.set_result(item)
                return
        if self.full():
            raise Full()
        self._idle.append(item)

    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)  # never blocks: the pool never holds more than maxsize

    def get_nowait(self) -> _T:
        if not self._idle:
            raise Empty()
        return self._idle.pop() if self.use_lifo else self._idle.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        while self._idle and self._waiters:  # never the case, but never strand a waiter
            self.put_nowait(self.get_nowait())
        if self._idle:
            return self.get_nowait()
        if not block:
            raise Empty()
        # Wait on a bare future with a timer, not in a coroutine under asyncio.timeout():
        # most checkouts under load wait, and this is cheaper (docs/architecture.md).
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_T] = loop.create_future()
        self._waiters.append(waiter)
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            return await_only(waiter)
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection just as the wait ended: pass it to the next in line.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()


def _expire(waiter: "asyncio.Future[Any]") -> None:
    if not waiter.done():
        waiter.set_exception(Empty())


class CheckoutListener(Protocol):
    """Told of every checkout's wait (catalog.metrics is one)."""

    def checkout_started(self) -> None:
        """A request starts waiting for a connection."""

    def checkout_ended(self, waited: float, timed_out: bool) -> None:
        """It got one after `waited` seconds, or gave up (pool timeout)."""


@dataclass
class PoolCounts:
    """Since the engine was created; one object shared by the pools dispose() swaps in."""

    connects: int = 0
    invalidations: int = 0
    checkout_timeouts: int = 0


class MeteredPool(AsyncAdaptedQueuePool):
    """SQLAlchemy's asyncio queue pool, first come first served, timed and counted."""

    _queue_class = FairQueue  # type: ignore[assignment]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # As given (SQLAlchemy keeps it only under a private name); 10 is its default.
        self.max_overflow = int(kwargs.get("max_overflow", 10))
        self.waiting = 0
        self.counts = PoolCounts()
        self.listeners: list[CheckoutListener] = []

    def connect(self) -> PoolProxiedConnection:
        started = time.perf_counter()
        self.waiting += 1
        for listener in self.listeners:
            listener.checkout_started()
        timed_out = False
        try:
            return super().connect()
        except sa_exc.TimeoutError:
            self.counts.checkout_timeouts += 1
            timed_out = True
            raise
        finally:
            self.waiting -= 1
            waited = time.perf_counter() - started
            for listener in self.listeners:
                listener.checkout_ended(waited, timed_out)

    def recreate(self) -> "MeteredPool":
        # dispose() swaps in a new pool of the same class, with the same event
        # listeners: the same counts and checkout listeners too.
        new = super().recreate()
        assert isinstance(new, MeteredPool)
        new.counts = self.counts
        new.listeners = self.listeners
        return new


class PoolSnapshot(BaseModel):
    """The connection pool of the worker process that answers (/metrics sums them all)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "pool_size": 10,
                    "max_overflow": 0,
                    "timeout_seconds": 5.0,
                    "checked_out": 3,
                    "checked_in": 5,
                    "overflow": 0,
                    "waiting": 0,
                    "connects": 8,
                    "invalidations": 0,
                    "checkout_timeouts": 0,
                }
            ]
        }
    )

    pool_size: int = Field(description="Connections kept open")
    max_overflow: int = Field(description="Extra connections allowed under bursts")
    timeout_seconds: float = Field(description="How long a request waits for a connection")
    checked_out: int = Field(description="Connections lent to requests now")
    checked_in: int = Field(description="Idle connections in the pool now")
    overflow: int = Field(description="Connections open beyond pool_size now")
    waiting: int = Field(description="Requests waiting for a connection now")
    connects: int = Field(description="Connections opened since start")
    invalidations: int = Field(description="Connections found dead since start")
    checkout_timeouts: int = Field(description="Requests that got no connection in time")


def ping_idle_connections(pool: Pool, dialect: Dialect, after_seconds: float) -> None:
    """Ping a connection on checkout if it sat idle in the pool longer than `after_seconds`.

    A busy pool pays nothing (its connections never sit that long); a connection that
    outlived a database restart during a quiet spell is found dead here and replaced,
    instead of failing the request that would have used it.
    """

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_CHECKIN_KEY] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        checked_in = record.info.get(_CHECKIN_KEY)
        if checked_in is None or time.monotonic() - checked_in < after_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            if dialect.is_disconnect(cast(Any, error), dbapi_connection, None):
                # The pool closes this connection and checks out another (3 tries).
                raise sa_exc.DisconnectionError(str(error)) from error
            raise


def count_pool_events(pool: MeteredPool) -> None:
    """Keep the pool's counts of connects and invalidations (dispose() keeps these
    listeners, and the counts, on the new pool)."""
    counts = pool.counts

    @event.listens_for(pool, "connect")
    def _connected(_dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        counts.connects += 1

    @event.listens_for(pool, "invalidate")
    def _invalidated(_dbapi_connection: Any, _record: ConnectionPoolEntry, _exc: Any) -> None:
        counts.invalidations += 1


def pool_snapshot(pool: Pool) -> PoolSnapshot:
    """The pool's state now (pools without a queue, e.g. SQLite in memory, show zeros)."""
    if not isinstance(pool, AsyncAdaptedQueuePool):
        return PoolSnapshot(
            pool_size=0,
            max_overflow=0,
            timeout_seconds=0,
            checked_out=0,
            checked_in=0,
            overflow=0,
            waiting=0,
            connects=0,
            invalidations=0,
            checkout_timeouts=0,
        )
    metered = pool if isinstance(pool, MeteredPool) else None
    return PoolSnapshot(
        pool_size=pool.size(),
        max_overflow=metered.max_overflow if metered else 0,
        timeout_seconds=pool.timeout(),
        checked_out=pool.checkedout(),
        checked_in=pool.checkedin(),
        overflow=max(pool.overflow(), 0),
        waiting=metered.waiting if metered else 0,
        connects=metered.counts.connects if metered else 0,
        invalidations=metered.counts.invalidations if metered else 0,
        checkout_timeouts=metered.counts.checkout_timeouts if metered else 0,
    )
