"""The session factory, the one request dependency that commits, and the read one.

A request that needs the database declares `session: SessionDep`. It gets one
`AsyncSession`, which borrows a connection from the pool on its first statement (not
before) and gives it back when the request's work is done. Services and repositories
flush but never commit: `get_session` commits once, after the route returns and
before the response is sent, so a failed commit becomes an error response instead of
a 2xx for data that was never saved. Routes that do not declare it never touch the pool.

Public reads declare `connection: ReadConnectionDep` instead: a bare connection from the
same pool for Core selects, with no session around it (see `create_read_engine`).
"""

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from sqlalchemy import Connection, TextClause, UpdateBase, event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

__all__ = [
    "EngineDep",
    "ReadConnectionDep",
    "ReadOnlyConnectionError",
    "SessionDep",
    "SessionFactoryDep",
    "create_read_engine",
    "create_sessionmaker",
    "get_engine",
    "get_read_connection",
    "get_session",
    "get_sessionmaker",
]


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The process's session factory, bound to its one engine."""
    return async_sessionmaker(
        engine,
        # Objects stay readable after commit, so the response can be built from them
        # without another round trip.
        expire_on_commit=False,
        # Writes go out when a repository flushes on purpose, not as a side effect of
        # a query.
        autoflush=False,
    )


class ReadOnlyConnectionError(RuntimeError):
    """A request that declared it only reads tried to write: a bug in the route."""


# SQL text that only reads starts so (a WITH can hide a write: PostgreSQL's data-changing
# CTEs; this is a guard against mistakes, not against hostile code).
_READ_TEXT = re.compile(r"\s*(SELECT|WITH|EXPLAIN|SHOW|VALUES)\b", re.IGNORECASE)


_READ_ONLY_OPTION = "catalog_read_only"


def _refuse_writes(
    _connection: Connection, statement: Any, _multi: Any, _params: Any, options: Any
) -> None:
    if not options.get(_READ_ONLY_OPTION):
        return
    sql = statement.text if isinstance(statement, TextClause) else statement
    if isinstance(statement, UpdateBase) or (isinstance(sql, str) and not _READ_TEXT.match(sql)):
        raise ReadOnlyConnectionError("A read connection cannot write; use SessionDep.")


def create_read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine of requests that only read: the same pool, no session, no transaction.

    Public reads are Core selects on a bare connection. Skipping the session (its
    transaction object, identity map and ORM loading) and building the hot statement
    once takes a third off the CPU that reading one product costs, on PostgreSQL and
    SQLite alike (bench/read_paths.py). Writes stay ORM, on `SessionDep`.

    The connection is borrowed when the dependency runs, before FastAPI validates the
    route's parameters: a request with bad parameters borrows one for a moment too.

    On PostgreSQL its connections run in autocommit: each statement is its own
    transaction, so a read is one round trip instead of three (BEGIN, the query,
    COMMIT). asyncpg keeps the autocommit flag on the client, so switching a pooled
    connection to it and back costs nothing. Elsewhere the flag would cost more than it
    saves (MySQL drivers send SET autocommit both ways; sqlite3 never sends BEGIN for a
    read anyway), so the connection is used as it is and the transaction the first read
    opened ends when the connection goes back to the pool. Statements of one request
    may see different snapshots on PostgreSQL: a page and its count=exact, for instance.

    A write through it (INSERT, UPDATE, DELETE, or SQL text that is not a read) raises
    ReadOnlyConnectionError before it reaches the database.
    """
    options: dict[str, Any] = {_READ_ONLY_OPTION: True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "AUTOCOMMIT"
    # The guard listens on the engine itself and checks the option, so every statement
    # (writes too) pays one dictionary lookup. A listener of the copy's own cost a read
    # on SQLite about 70 µs, against about 25 µs for this one: SQLAlchemy joins a copy's
    # listeners with its engine's anew for each connection.
    if not event.contains(engine.sync_engine, "before_execute", _refuse_writes):
        event.listen(engine.sync_engine, "before_execute", _refuse_writes)
    # A copy of the engine with these options; it shares the engine's pool.
    return engine.execution_options(**options)


# The dependencies below are `async def` although they never await: FastAPI runs a plain
# `def` dependency in its thread pool, a thread hop per request for a dictionary lookup.


async def get_engine(request: Request) -> AsyncEngine:
    """The engine the app's lifespan created."""
    return cast(AsyncEngine, request.app.state.engine)


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]


def _app_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    return cast(async_sessionmaker[AsyncSession], request.app.state.sessionmaker)


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """The session factory, for work that outlives the route (streamed responses)."""
    return _app_sessionmaker(request)


# For routes whose response streams: they open a short session per piece of work, so no
# connection is held while the client reads.
SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: commit on success, roll back on any error, always close."""
    make_session = _app_sessionmaker(request)
    async with make_session() as session:  # closing returns the connection to the pool
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        # Reached only when the route returned normally: a failure here propagates to
        # the error handler, and the client sees an error, not a success.
        await session.commit()


# scope="function": the code after `yield` runs as soon as the route returns, before
# the response is sent (the default "request" scope would run it after sending).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_read_connection(request: Request) -> AsyncIterator[AsyncConnection]:
    """One read-only connection per request, given back as soon as the route returns
    (ending, outside PostgreSQL, the transaction its first read began)."""
    read_engine = cast(AsyncEngine, request.app.state.read_engine)
    async with read_engine.connect() as connection:
        yield connection


# For public routes that only read: Core selects, no session (see create_read_engine).
# A route that also takes CurrentUser takes SessionDep: the user is loaded through that
# session, and one request, one connection.
ReadConnectionDep = Annotated[AsyncConnection, Depends(get_read_connection, scope="function")]
