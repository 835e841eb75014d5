"""What the database server is and allows: its version, its connection limit, and
whether the pool's settings fit them. The service checks them at start
(catalog.startup); `catalog doctor` prints them."""

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from catalog.db.pooler import PoolerFacts

__all__ = [
    "BudgetSettings",
    "ConnectionBudget",
    "ServerFacts",
    "connection_budget",
    "recycle_problem",
    "round_trip",
    "server_facts",
    "timeout_problems",
]


class BudgetSettings(Protocol):
    """The settings the checks read (catalog.config.Settings is one)."""

    @property
    def workers(self) -> int: ...
    @property
    def pool_size(self) -> int: ...
    @property
    def max_overflow(self) -> int: ...
    @property
    def connection_reserve(self) -> int: ...
    @property
    def pool_recycle(self) -> int: ...
    @property
    def statement_timeout(self) -> float: ...
    @property
    def idle_in_transaction_timeout(self) -> float: ...


@dataclass(frozen=True)
class ServerFacts:
    version: str
    # None where the dialect has no such limit (SQLite) or it is not looked up (SQL Server).
    max_connections: int | None
    connections_in_use: int | None
    wait_timeout: int | None  # MariaDB/MySQL only
    # The safety timeouts a session of the service gets, in seconds (0: none), as the
    # server applies them (PostgreSQL, MariaDB); None where not looked up.
    statement_timeout: float | None = None
    idle_in_transaction_timeout: float | None = None


async def round_trip(engine: AsyncEngine) -> None:
    """One statement to the server and back, on a connection from the engine's pool."""
    async with engine.connect() as connection:
        await connection.execute(_ROUND_TRIP)


_ROUND_TRIP = text("SELECT 1")
_POSTGRESQL_TIMEOUTS = text(
    "SELECT (SELECT setting FROM pg_settings WHERE name = 'statement_timeout'),"
    " (SELECT setting FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout')"
)
_MARIADB_TIMEOUTS = text("SELECT @@max_statement_time, @@idle_transaction_timeout")


async def _scalar(connection: AsyncConnection, sql: str) -> object:
    return (await connection.execute(text(sql))).scalar_one()


async def server_facts(engine: AsyncEngine) -> ServerFacts:
    """The server's version and connection limits, in one connection."""
    async with engine.connect() as connection:
        name = engine.dialect.name
        if name == "postgresql":
            # Milliseconds, as the session has them (from the connection, the role, the
            # database or a pooler's connect_query).
            pg_timeouts = (await connection.execute(_POSTGRESQL_TIMEOUTS)).one()
            return ServerFacts(
                version=str(await _scalar(connection, "SELECT version()")),
                max_connections=int(str(await _scalar(connection, "SHOW max_connections"))),
                connections_in_use=int(
                    str(await _scalar(connection, "SELECT count(*) FROM pg_stat_activity"))
                ),
                wait_timeout=None,
                statement_timeout=int(pg_timeouts[0]) / 1000,
                idle_in_transaction_timeout=int(pg_timeouts[1]) / 1000,
            )
        if name in ("mysql", "mariadb"):
            in_use = (await connection.execute(text("SHOW STATUS LIKE 'Threads_connected'"))).one()
            mysql_version = str(await _scalar(connection, "SELECT version()"))
            timeouts: tuple[object, object] = (None, None)  # MySQL has neither setting
            if "mariadb" in mysql_version.lower():
                timeouts = tuple((await connection.execute(_MARIADB_TIMEOUTS)).one())
            return ServerFacts(
                version=mysql_version,
                max_connections=int(str(await _scalar(connection, "SELECT @@max_connections"))),
                connections_in_use=int(in_use[1]),
                wait_timeout=int(str(await _scalar(connection, "SELECT @@wait_timeout"))),
                statement_timeout=None if timeouts[0] is None else float(str(timeouts[0])),
                idle_in_transaction_timeout=(
                    None if timeouts[1] is None else float(str(timeouts[1]))
                ),
            )
        if name == "sqlite":
            sqlite_version = await _scalar(connection, "SELECT sqlite_version()")
            return ServerFacts(f"SQLite {sqlite_version}", None, None, None)
        return ServerFacts(str(await _scalar(connection, "SELECT @@VERSION")), None, None, None)


@dataclass(frozen=True)
class ConnectionBudget:
    """Can every worker fill its pool without exceeding what the server (or the pooler in
    front of it) accepts?"""

    workers: int
    pool_size: int
    max_overflow: int
    max_connections: int | None
    reserve: int
    # The service connects to a pooler (catalog's pools are its clients), whose limits
    # are `pooler`, or unknown when None.
    behind_pooler: bool = False
    pooler: PoolerFacts | None = None

    @property
    def needed(self) -> int:
        return self.workers * (self.pool_size + self.max_overflow)

    @property
    def available(self) -> int | None:
        if self.max_connections is None:
            return None
        return self.max_connections - self.reserve

    @property
    def clients_ok(self) -> bool:
        """The pools fit in the pooler's client limit (always, without a pooler)."""
        return self.pooler is None or self.needed <= self.pooler.max_client_conn

    @property
    def server_ok(self) -> bool:
        """What connects to the server (the pools, or the pooler's server pool) fits."""
        if self.available is None or (self.behind_pooler and self.pooler is None):
            return True
        opened = self.pooler.server_connections if self.pooler else self.needed
        return opened <= self.available

    @property
    def ok(self) -> bool:
        return self.clients_ok and self.server_ok

    def describe(self) -> str:
        needed = (
            f"workers x (pool_size + max_overflow) = {self.workers} x "
            f"({self.pool_size} + {self.max_overflow}) = {self.needed} connections"
        )
        limit = (
            f"the server's max_connections {self.max_connections} - reserve {self.reserve}"
            f" = {self.available}"
        )
        if not self.behind_pooler:
            if self.available is None:
                return f"{needed}; the database sets no connection limit"
            if self.ok:
                return f"{needed}, within {limit}"
            return (
                f"{needed}, but {limit}. Lower CATALOG_POOL_SIZE, CATALOG_MAX_OVERFLOW or "
                "the number of workers (CATALOG_WORKERS / --workers), or raise "
                "max_connections at the server; CATALOG_CONNECTION_BUDGET_CHECK=false "
                "starts anyway"
            )
        if self.pooler is None:
            return (
                f"{needed} to the pooler; its limits are not checked (set "
                "CATALOG_POOLER_ADMIN_URL to its admin console)"
            )
        clients = (
            f"{needed} to the pooler, "
            + ("within" if self.clients_ok else "but")
            + f" its max_client_conn {self.pooler.max_client_conn}"
        )
        pool = self.pooler
        servers = (
            f"its server pool (pool_size {pool.pool_size} + reserve_pool "
            f"{pool.reserve_pool} = {pool.server_connections}) "
            + ("within " if self.server_ok else "over ")
            + (limit if self.available is not None else "no server limit")
        )
        advice = ""
        if not self.clients_ok:
            advice += (
                ". Raise the pooler's max_client_conn, or lower CATALOG_POOL_SIZE, "
                "CATALOG_MAX_OVERFLOW or the number of workers"
            )
        if not self.server_ok:
            advice += ". Lower the pooler's pool_size or raise the server's max_connections"
        if advice:
            advice += "; CATALOG_CONNECTION_BUDGET_CHECK=false starts anyway"
        return f"{clients}; {servers}{advice}"


def connection_budget(
    settings: BudgetSettings,
    facts: ServerFacts,
    *,
    behind_pooler: bool = False,
    pooler: PoolerFacts | None = None,
) -> ConnectionBudget:
    """The budget of `settings` against the server described by `facts`, and the pooler
    in between if there is one."""
    return ConnectionBudget(
        workers=settings.workers,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        max_connections=facts.max_connections,
        reserve=settings.connection_reserve,
        behind_pooler=behind_pooler,
        pooler=pooler,
    )


def timeout_problems(facts: ServerFacts) -> list[str]:
    """The safety timeouts that the service's sessions do not get (0 at the server)."""
    names = (
        ("statement timeout", facts.statement_timeout),
        ("idle-in-transaction timeout", facts.idle_in_transaction_timeout),
    )
    return [
        f"the server applies no {name} to the service's sessions"
        for name, value in names
        if value is not None and value <= 0
    ]


def recycle_problem(settings: BudgetSettings, facts: ServerFacts) -> str | None:
    """Why pooled connections would be cut by the server while idle, if they would."""
    if facts.wait_timeout is None:
        return None
    if 0 < settings.pool_recycle < facts.wait_timeout:
        return None
    return (
        f"CATALOG_POOL_RECYCLE={settings.pool_recycle} must be between 1 and the server's "
        f"wait_timeout ({facts.wait_timeout} s), or pooled connections will be closed by "
        "the server while idle; lower CATALOG_POOL_RECYCLE"
    )
