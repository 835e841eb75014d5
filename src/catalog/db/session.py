"""The session factory and the one request dependency that commits.

A request that needs the database declares `session: SessionDep`. It gets one
`AsyncSession`, which borrows a connection from the pool on its first statement (not
before) and gives it back when the request's work is done. Services and repositories
flush but never commit: `get_session` commits once, after the route returns and
before the response is sent, so a failed commit becomes an error response instead of
a 2xx for data that was never saved. Routes that do not declare it never touch the pool.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

__all__ = [
    "EngineDep",
    "ReadOnlySessionError",
    "ReadSessionDep",
    "SessionDep",
    "SessionFactoryDep",
    "create_read_sessionmaker",
    "create_sessionmaker",
    "get_engine",
    "get_read_session",
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


class ReadOnlySession(Session):
    """A session that refuses to write: see `create_read_sessionmaker`."""


class ReadOnlySessionError(RuntimeError):
    """A request that declared it only reads tried to write: a bug in the route."""


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_flush(session: Session, _context: UOWTransaction, _instances: Any) -> None:
    raise ReadOnlySessionError("A read-only session cannot flush changes; use SessionDep.")


@event.listens_for(ReadOnlySession, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySessionError("A read-only session cannot write; use SessionDep.")


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The session factory of requests that only read, on the same engine and pool.

    On PostgreSQL its connections run in autocommit: each statement is its own
    transaction, so a read is one round trip instead of three (BEGIN, the query,
    COMMIT). asyncpg keeps the autocommit flag on the client, so switching a pooled
    connection to it and back costs nothing. Elsewhere the flag would cost more than it
    saves (MySQL drivers send SET autocommit both ways; sqlite3 never sends BEGIN for a
    read anyway), so the connection is used as it is and the transaction the first read
    opened ends when the session closes. Statements of one request may see different
    snapshots on PostgreSQL: a page and its count=exact, for instance.
    """
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(
        engine, sync_session_class=ReadOnlySession, expire_on_commit=False, autoflush=False
    )


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


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One read-only session per request: nothing to commit; closing gives back the
    connection (ending, outside PostgreSQL, the transaction its first read began)."""
    make_session = cast(async_sessionmaker[AsyncSession], request.app.state.read_sessionmaker)
    async with make_session() as session:
        yield session


# For public routes that only read. A route that also takes CurrentUser takes
# SessionDep: the user is loaded through that session, and one request, one session.
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
