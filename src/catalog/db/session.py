"""The session factory and the one request dependency that commits.

A request that needs the database declares `session: SessionDep`. It gets one
`AsyncSession`, which borrows a connection from the pool on its first statement (not
before) and gives it back when the request's work is done. Services and repositories
flush but never commit: `get_session` commits once, after the route returns and
before the response is sent, so a failed commit becomes an error response instead of
a 2xx for data that was never saved. Routes that do not declare it never touch the pool.
"""

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

__all__ = [
    "EngineDep",
    "SessionDep",
    "SessionFactoryDep",
    "create_sessionmaker",
    "get_engine",
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
