"""The engine and its connection pool: one per process, with per-dialect options in one place."""

import asyncio
import math
import sys
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, PoolResetState, StaticPool

from catalog.db.pool import MeteredPool, count_pool_events, ping_idle_connections
from catalog.db.sqlite import is_in_memory  # importing it registers sqlite+inline://

__all__ = ["EngineSettings", "behind_transaction_pooler", "create_engine", "engine_options"]


class EngineSettings(Protocol):
    """What the engine is built from; `catalog.config.Settings` is one (the kit reads
    settings, it does not know where they come from)."""

    @property
    def database_url(self) -> str: ...
    @property
    def database_pooler(self) -> str: ...
    @property
    def echo_sql(self) -> bool: ...
    @property
    def pool_size(self) -> int: ...
    @property
    def max_overflow(self) -> int: ...
    @property
    def pool_timeout(self) -> float: ...
    @property
    def pool_recycle(self) -> int: ...
    @property
    def pool_pre_ping(self) -> bool: ...
    @property
    def pool_ping_after_idle(self) -> float: ...
    @property
    def connect_timeout(self) -> float: ...
    @property
    def statement_timeout(self) -> float: ...
    @property
    def idle_in_transaction_timeout(self) -> float: ...
    @property
    def sqlite_busy_timeout(self) -> float: ...
    @property
    def application_name(self) -> str: ...


# How much longer than the server's statement timeout the client waits for an answer.
_CLIENT_MARGIN_SECONDS = 5.0


def engine_options(settings: EngineSettings) -> dict[str, Any]:
    """Keyword arguments for `create_async_engine`, tuned for the URL's dialect."""
    url = make_url(settings.database_url)
    backend = url.get_backend_name()
    options: dict[str, Any] = {
        "echo": settings.echo_sql,
        # Bound values never appear in an error's text or a log line: they are request
        # values, emails, password hashes.
        "hide_parameters": True,
        # SQLAlchemy's asyncio queue pool, with waiting requests served strictly first
        # come, first served (catalog.db.pool), counting its checkouts, waits, timeouts.
        "poolclass": MeteredPool,
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": settings.pool_recycle,
        # The most recently returned idle connection is used first, so light load keeps
        # few connections busy (waiting requests are still served first come, first served).
        "pool_use_lifo": True,
        "pool_pre_ping": settings.pool_pre_ping,
        # The default, spelled out: a returned connection is rolled back, so nothing
        # a request left open can leak into the next one.
        "pool_reset_on_return": "rollback",
    }
    if backend == "sqlite":
        options.update(_sqlite_options(url, settings))
    elif backend == "postgresql":
        options["connect_args"] = _postgresql_connect_args(url, settings)
    elif backend in ("mysql", "mariadb"):
        options["connect_args"] = {
            # 4-byte UTF-8: the server's legacy "utf8" cannot store emoji.
            "charset": "utf8mb4",
            "connect_timeout": max(1, round(settings.connect_timeout)),
            # The client gives up on a server that stops answering (hung, not down).
            "read_timeout": settings.statement_timeout + _CLIENT_MARGIN_SECONDS,
            # UTC session time zone whatever the server's. The /*M! ... */ part runs on
            # MariaDB only (MySQL skips it): the server cancels long statements and ends
            # sessions idle inside a transaction.
            "init_command": (
                "SET time_zone = '+00:00'"
                f" /*M!100300 , max_statement_time = {settings.statement_timeout:g}"
                f", idle_transaction_timeout = {math.ceil(settings.idle_in_transaction_timeout)} */"
            ),
        }
        # pool_recycle must stay below the server's wait_timeout, after which it drops
        # idle connections ("server has gone away"): checked against the live server
        # at start-up by catalog.startup.
        # No reset of the pool's own: _rollback_if_in_transaction replaces it (False,
        # not None, which create_engine drops as "not set").
        options["pool_reset_on_return"] = False
    elif backend == "mssql":
        options["connect_args"] = {
            # Login timeout of the ODBC driver, in seconds.
            "timeout": round(settings.connect_timeout),
        }
        # A deadlock victim's transaction is already gone at the server; do not turn
        # the rollback that follows into a second error.
        options["ignore_no_transaction_on_rollback"] = True
    return options


def _sqlite_options(url: URL, settings: EngineSettings) -> dict[str, Any]:
    # The driver's own transaction handling is kept on purpose: it sends BEGIN just
    # before the first INSERT/UPDATE/DELETE, so a request's reads hold no snapshot that
    # a later write would have to upgrade (SQLITE_BUSY_SNAPSHOT fails at once, whatever
    # the busy timeout). Writes that must see consistent data are single guarded
    # statements (see products.repository.update_if_version).
    options: dict[str, Any] = {
        # How long a write waits for another writer's lock, in seconds: sqlite3's own
        # wait (PRAGMA busy_timeout) with aiosqlite, an asyncio wait with sqlite+inline.
        "connect_args": {"timeout": settings.sqlite_busy_timeout},
    }
    if is_in_memory(url):
        # Each connection would see a new, empty database: share one.
        options.update(poolclass=StaticPool)
        for key in ("pool_size", "max_overflow", "pool_timeout", "pool_use_lifo"):
            options[key] = None
    return options


def behind_transaction_pooler(settings: EngineSettings) -> bool:
    """Does `database_url` lead to a pooler that lends server connections per transaction?"""
    return settings.database_pooler == "transaction"


def _postgresql_connect_args(url: URL, settings: EngineSettings) -> dict[str, Any]:
    server_settings = {
        # Tells this service's sessions apart in pg_stat_activity and the logs.
        "application_name": settings.application_name,
        # Timestamps come back in UTC whatever the server's zone is.
        "timezone": "UTC",
    }
    pooled_per_transaction = behind_transaction_pooler(settings)
    if not pooled_per_transaction:
        # PgBouncer refuses these two at connect (and its track_extra_parameters would
        # accept them without applying them): behind it they are set where its server
        # connections get them, and catalog doctor checks they are (docs/scale-out.md).
        # The server cancels a statement that runs longer...
        server_settings["statement_timeout"] = str(round(settings.statement_timeout * 1000))
        # ...and ends a session left idle inside a transaction, releasing its locks.
        server_settings["idle_in_transaction_session_timeout"] = str(
            round(settings.idle_in_transaction_timeout * 1000)
        )
    if url.get_driver_name() != "asyncpg":
        args: dict[str, Any] = {"connect_timeout": max(1, round(settings.connect_timeout))}
        if pooled_per_transaction:
            # psycopg: never prepare (a named statement would outlive its transaction's
            # server connection); application_name is a connection parameter, which
            # PgBouncer passes on, where it refuses `options`.
            args.update(prepare_threshold=None, application_name=settings.application_name)
        else:
            args["options"] = " ".join(
                f"-c {key}={value}" for key, value in server_settings.items()
            )
        return args
    args = {
        "timeout": settings.connect_timeout,
        # The client stops waiting for a server that hangs instead of answering.
        "command_timeout": settings.statement_timeout + _CLIENT_MARGIN_SECONDS,
        "server_settings": server_settings,
    }
    if pooled_per_transaction:
        # Through a transaction-mode pooler the next statement may reach another server
        # connection, where a named prepared statement does not exist (or is another
        # client's). asyncpg then uses the unnamed statement, parsed and run within one
        # transaction, and SQLAlchemy's dialect keeps no prepared statement across
        # statements. Measured against the alternatives in docs/scale-out.md.
        args.update(statement_cache_size=0, prepared_statement_cache_size=0)
    return args


def _on_sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # Readers no longer block the writer, nor the writer the readers.
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL is safe against corruption and much faster than FULL.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # SQLite leaves foreign keys unchecked unless asked, per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _raise_swallowed_cancellation(*_: Any) -> None:
    """Re-raise a cancellation that the driver lost, before the next statement or commit.

    Python 3.11's `asyncio.wait_for` returns the result and drops the cancellation when
    the awaited read completes in the same loop iteration as the cancel (fixed in 3.12,
    cpython gh-86296). asyncmy wraps every read in `wait_for` when `read_timeout` is set,
    so a cancelled request could carry on and wait on locks it should have given up.
    The task still counts the cancellation (`cancelling()`): code that means to swallow
    one calls `uncancel()`, as `asyncio.timeout` and anyio's cancel scopes do.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _rollback_if_in_transaction(
    dbapi_connection: Any, _record: ConnectionPoolEntry, reset_state: PoolResetState
) -> None:
    """The pool's reset on return, for MySQL drivers: ROLLBACK only if one is needed.

    A session that closes rolls its transaction back itself, and then the pool rolls
    back again: on PostgreSQL and SQLite the drivers know there is nothing to roll back
    and send nothing, but MySQL drivers send a second ROLLBACK, one more round trip for
    every request. The server says in each reply whether a transaction is open; the
    reset asks the driver for that and rolls back only then.
    """
    if reset_state.terminate_only or not reset_state.asyncio_safe:
        return  # the connection is being discarded: nothing to reset
    in_transaction = getattr(dbapi_connection.driver_connection, "get_transaction_status", None)
    if in_transaction is None or in_transaction():
        dbapi_connection.rollback()


_POOL_ONLY_OPTIONS = (
    "pool_size",
    "max_overflow",
    "pool_timeout",
    "pool_use_lifo",
    "pool_reset_on_return",
)


def create_engine(settings: EngineSettings, *, pooled: bool = True) -> AsyncEngine:
    """Build the process's engine; it connects lazily, on the first checkout.

    `pooled=False` gives one-shot commands (migrations, seeding) a connection that is
    closed when they are done instead of a pool.
    """
    options = engine_options(settings)
    if not pooled and options["poolclass"] is MeteredPool:
        options["poolclass"] = NullPool
        for key in _POOL_ONLY_OPTIONS:
            options.pop(key)
    options = {key: value for key, value in options.items() if value is not None}
    engine = create_async_engine(settings.database_url, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        # A statement with RETURNING stays open until its rows are fetched. A request
        # cancelled in between leaves it open, and sqlite3 cannot close a connection
        # with an open statement: its write lock would outlive the request and lock
        # every writer out. Without RETURNING, new ids come from cursor.lastrowid.
        dialect = engine.dialect
        dialect.insert_returning = dialect.update_returning = dialect.delete_returning = False
    if engine.dialect.name in ("mysql", "mariadb"):
        if pooled:
            event.listen(engine.sync_engine.pool, "reset", _rollback_if_in_transaction)
        if sys.version_info < (3, 12):
            for event_name in ("before_cursor_execute", "commit"):
                event.listen(engine.sync_engine, event_name, _raise_swallowed_cancellation)
    if pooled:
        pool = engine.sync_engine.pool
        if isinstance(pool, MeteredPool):
            count_pool_events(pool)
        if not settings.pool_pre_ping and settings.pool_ping_after_idle > 0:
            ping_idle_connections(pool, engine.dialect, settings.pool_ping_after_idle)
    return engine
