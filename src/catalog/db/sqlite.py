"""SQLite for asyncio without a thread per call: `sqlite+inline://`, catalog's dialect.

aiosqlite runs every call (cursor, execute, fetch, close) in a thread of its own and
hands each result back to the event loop: four thread hand-offs for one primary-key read,
which cost about three times the read itself (bench/read_paths.py --backend sqlite). A
read from SQLite's page cache takes microseconds, less than one hand-off, so this
dialect calls sqlite3 directly on the event loop's thread.

What must not block the loop is a wait for another writer's lock: sqlite3's own busy
handler would sleep in the call, stopping every request of the worker, the lock holder's
included. So sqlite3 gets a busy timeout of 0 and reports SQLITE_BUSY at once; the
statement (or COMMIT) is tried again after an `asyncio.sleep`, with back-off, until the
connection's `timeout` (CATALOG_SQLITE_BUSY_TIMEOUT) has passed, and then the error is
raised as sqlite3 would have raised it. A request cancelled while it waits stops at once.
SQLITE_BUSY_SNAPSHOT is not retried: a WAL read snapshot that a write would have to
upgrade cannot succeed by waiting (sqlite3's busy handler does not retry it either).

A statement that does run holds the loop for as long as SQLite works on it: fine for
indexed reads and small writes, the service's traffic; bulk work (seed, import) goes
through the same dialect in its own process or request and blocks its loop while a batch
is written, as aiosqlite's thread would have blocked that connection.
"""

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Generator
from typing import Any

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.pool import AsyncAdaptedQueuePool, Pool, StaticPool
from sqlalchemy.util.concurrency import await_only

__all__ = ["SQLiteDialect_inline", "is_in_memory"]

# sqlite3.SQLITE_BUSY_SNAPSHOT exists only from Python 3.11 on SQLite >= 3.8.
_BUSY_SNAPSHOT = 5 | (2 << 8)
_FIRST_WAIT, _LONGEST_WAIT = 0.001, 0.025  # seconds


def is_in_memory(url: URL) -> bool:
    """A database in memory, which each new connection would see empty: `sqlite://`,
    `:memory:`, or `mode=memory` (as SQLAlchemy's own SQLite dialects tell)."""
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _is_busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is None:  # no code: match the message sqlite3 gives SQLITE_BUSY
        return str(error) == "database is locked"
    return bool(code & 0xFF == sqlite3.SQLITE_BUSY and code != _BUSY_SNAPSHOT)


class _WaitsForLocks:
    """Retry a call that met SQLITE_BUSY, sleeping on the event loop in between."""

    busy_timeout: float = 5.0

    def _retry(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
            first_error = error
        deadline = time.monotonic() + self.busy_timeout
        wait = _FIRST_WAIT
        while True:
            try:
                await_only(asyncio.sleep(wait))
            except MissingGreenlet:
                # Called outside SQLAlchemy's greenlet (a connection closed by the
                # garbage collector): no loop to wait on, so fail as sqlite3 would.
                raise first_error from None
            try:
                return call(*args)
            except sqlite3.OperationalError as error:
                if not _is_busy(error) or time.monotonic() >= deadline:
                    raise
            wait = min(wait * 2, _LONGEST_WAIT)


class _Ready(Awaitable[None]):
    """An awaitable that is already done: awaiting it does not yield to the loop."""

    def __await__(self) -> Generator[Any, Any, None]:
        yield from ()


_READY = _Ready()


class _Cursor(_WaitsForLocks, sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> "_Cursor":
        self._retry(super().execute, sql, parameters)
        # AsyncConnection.execute checks that the driver awaited something (its guard
        # against sync drivers): one pass through the greenlet, no loop iteration.
        await_only(_READY)
        return self

    async def _async_soft_close(self) -> None:
        """Called by SQLAlchemy's asyncio layer after each execute (async drivers fetch
        the rest of the rows there); sqlite3's rows stay in SQLite until fetched."""

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> "_Cursor":
        # A batch that met the lock wrote nothing: the whole batch is tried again.
        self._retry(super().executemany, sql, seq_of_parameters)
        await_only(_READY)
        return self


class _Connection(_WaitsForLocks, sqlite3.Connection):
    def cursor(self, factory: Any = None) -> Any:
        cursor = super().cursor(factory or _Cursor)
        cursor.busy_timeout = self.busy_timeout
        return cursor

    def commit(self) -> None:
        self._retry(super().commit)


class SQLiteDialect_inline(SQLiteDialect_pysqlite):  # noqa: N801 (SQLAlchemy's naming)
    """pysqlite, declared async: SQLAlchemy's asyncio engine runs it in its greenlet,
    where `_WaitsForLocks` can await."""

    driver = "inline"
    is_async = True
    supports_statement_cache = True

    @classmethod
    def get_pool_class(cls, url: URL) -> type[Pool]:
        # As aiosqlite's dialect: one shared connection for a database in memory.
        return StaticPool if is_in_memory(url) else AsyncAdaptedQueuePool

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        busy_timeout = float(cparams.pop("timeout", _WaitsForLocks.busy_timeout))
        connect: Any = sqlite3.connect  # its overloads do not take **cparams
        connection = connect(*cargs, timeout=0, factory=_Connection, **cparams)
        connection.busy_timeout = busy_timeout
        return connection


registry.register("sqlite.inline", __name__, "SQLiteDialect_inline")
