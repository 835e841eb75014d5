"""The session factory, the one request dependency that commits, and the read one.

A request that needs the database declares `session: SessionDep`. It gets one
`AsyncSession`, which borrows a connection from the pool on its first statement (not
before) and gives it back when the request's work is done. Services and repositories
flush but never commit: `get_session` commits once, after the route returns and
before the response is sent, so a failed commit becomes an error response instead of
a 2xx for data that was never saved. Routes that do not declare it never touch the pool.

Public reads declare `reader: ReaderDep` instead: Core selects, each on a connection
borrowed from the same pool for that statement, with no session around them (`Reader`).
"""

import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, Request
from sqlalchemy import Result, Row, Select, TextClause, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.util import greenlet_spawn

from catalog.db.explain import Explain

__all__ = [
    "EngineDep",
    "ReadOnlyError",
    "Reader",
    "ReaderDep",
    "SessionDep",
    "SessionFactoryDep",
    "TrackedSession",
    "create_sessionmaker",
    "get_engine",
    "get_reader",
    "get_session",
    "get_sessionmaker",
    "wrote",
]


class TrackedSession(Session):
    """A session that remembers whether it wrote (`wrote(session)`): a flush, or a
    statement that is not a SELECT (a bulk UPDATE, an INSERT ... ON CONFLICT)."""


_WROTE = "catalog.wrote"


@event.listens_for(TrackedSession, "after_flush")
def _flushed(session: Session, _context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(TrackedSession, "do_orm_execute")
def _executed(state: ORMExecuteState) -> None:
    if not state.is_select:
        state.session.info[_WROTE] = True


def wrote(session: AsyncSession) -> bool:
    """Whether the session flushed or ran a statement that writes."""
    return bool(session.info.get(_WROTE))


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The process's session factory, bound to its one engine."""
    return async_sessionmaker(
        engine,
        sync_session_class=TrackedSession,
        # Objects stay readable after commit, so the response can be built from them
        # without another round trip.
        expire_on_commit=False,
        # Writes go out when a repository flushes on purpose, not as a side effect of
        # a query.
        autoflush=False,
    )


_T = TypeVar("_T")

logger = logging.getLogger(__name__)


class ReadOnlyError(RuntimeError):
    """A route that declared it only reads tried to write: a bug in the route."""


# SQL text that only reads starts so (a WITH can hide a write: PostgreSQL's data-changing
# CTEs; this is a guard against mistakes, not against hostile code).
_READ_TEXT = re.compile(r"\s*(SELECT|WITH|EXPLAIN|SHOW|VALUES)\b", re.IGNORECASE)

# What a Reader runs: a select, the EXPLAIN of one (for an estimate), or SQL text that reads.
Readable = Select[Any] | Explain | TextClause


def _only_reads(statement: Readable) -> Readable:
    # The annotations keep writes out for mypy; this keeps them out at run time.
    if isinstance(statement, TextClause):
        if _READ_TEXT.match(statement.text):
            return statement
    elif isinstance(statement, Select | Explain):
        return statement
    raise ReadOnlyError("A Reader cannot write; use SessionDep.")


class Reader:
    """How public routes that only read reach the database: `ReaderDep`.

    Each call runs one Core select on a connection borrowed from the engine's pool for
    that statement alone, and returns its rows, already fetched. There is no session
    (no transaction object, identity map or ORM loading) and no `yield` dependency
    holding a connection for the whole request (docs/architecture.md has the figures).
    A request whose parameters FastAPI rejects never touches the pool, and the
    connection is back in the pool while the response is serialized.

    On PostgreSQL its connections run in autocommit: each statement is its own
    transaction, so a read is one round trip instead of three (BEGIN, the query,
    COMMIT). asyncpg keeps the autocommit flag on the client, so switching a pooled
    connection to it and back costs no round trip. Elsewhere the flag would cost more
    than it saves (MySQL drivers send SET autocommit both ways; sqlite3 never sends BEGIN
    for a read anyway): the transaction the read opened ends when its connection goes
    back to the pool. Either way, two reads of one request may see different snapshots
    (a page and its count=exact, for instance).

    Behind a transaction-mode pooler (`in_transactions=True`) reads run in transactions
    on PostgreSQL too: asyncpg parses a statement and runs it in two round trips, and
    outside a transaction the pooler may send the second to another server connection.

    Writes are refused: an INSERT, UPDATE or DELETE, or SQL text that is not a read,
    raises ReadOnlyError before it reaches the database. Writes take `SessionDep`.
    """

    __slots__ = ("_engine", "dialect")

    def __init__(self, engine: AsyncEngine, *, in_transactions: bool = False) -> None:
        self.dialect = engine.dialect
        if engine.dialect.name == "postgresql" and not in_transactions:
            # A copy of the engine with this option; it shares the engine's pool.
            engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Each read runs SQLAlchemy's sync API inside one greenlet_spawn, the call that
        # AsyncConnection.run_sync makes: checkout, execute, fetch and checkin in one hop
        # into SQLAlchemy's greenlet, where `async with engine.connect()` and `await
        # connection.execute()` take three, plus a task that shields the close (the
        # saving, and why a private name: docs/architecture.md, "SQLAlchemy internals").
        # The driver's awaits still yield to the event loop.
        self._engine = engine.sync_engine

    async def one_or_none(
        self, statement: Readable, params: Mapping[str, Any] | None = None
    ) -> Row[Any] | None:
        """The one row the statement finds, or None (MultipleResultsFound if more)."""
        return await greenlet_spawn(self._run, _only_reads(statement), params, Result.one_or_none)

    async def all(
        self, statement: Readable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Row[Any]]:
        """Every row the statement finds."""
        return await greenlet_spawn(self._run, _only_reads(statement), params, Result.all)

    async def scalar_one(self, statement: Readable, params: Mapping[str, Any] | None = None) -> Any:
        """The first column of the one row the statement finds."""
        return await greenlet_spawn(self._run, _only_reads(statement), params, Result.scalar_one)

    def _run(
        self,
        statement: Readable,
        params: Mapping[str, Any] | None,
        take: Callable[[Result[Any]], _T],
    ) -> _T:
        # Closing gives the connection back to the pool, also when the request is
        # cancelled while the statement runs (the error reaches here first).
        with self._engine.connect() as connection:
            return take(connection.execute(statement, params))


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
        # With a read replica, a write's commit position goes back to the client (its
        # consistency token), so that its next reads see the write (catalog.consistency).
        commit_position = getattr(request.app.state, "commit_position", None)
        if commit_position is not None and wrote(session):
            try:
                request.state.consistency_token = await commit_position()
            except Exception:
                # The write is committed: answer it as the success it is, without a
                # token (this client's next reads may then miss it for up to the lag).
                logger.warning("no consistency token for a committed write", exc_info=True)


# scope="function": the code after `yield` runs as soon as the route returns, before
# the response is sent (the default "request" scope would run it after sending).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_reader(request: Request) -> Reader:
    """The app's Reader, for routes that only read."""
    return cast(Reader, request.app.state.reader)


# For public routes that only read: Core selects, no session, a connection per statement.
# A route that also takes CurrentUser takes SessionDep: the user is loaded through that
# session, and one request, one connection.
ReaderDep = Annotated[Reader, Depends(get_reader)]
