"""What the database server is and allows: its version, its connection limit, and
whether the pool's settings fit them. The service checks them at start
(catalog.startup); `catalog doctor` prints them."""

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "BudgetSettings",
    "ConnectionBudget",
    "ServerFacts",
    "connection_budget",
    "recycle_problem",
    "round_trip",
    "server_facts",
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


@dataclass(frozen=True)
class ServerFacts:
    version: str
    # None where the dialect has no such limit (SQLite) or it is not looked up (SQL Server).
    max_connections: int | None
    connections_in_use: int | None
    wait_timeout: int | None  # MariaDB/MySQL only


async def round_trip(engine: AsyncEngine) -> None:
    """One statement to the server and back, on a connection from the engine's pool."""
    async with engine.connect() as connection:
        await connection.execute(_ROUND_TRIP)


_ROUND_TRIP = text("SELECT 1")


async def _scalar(connection: AsyncConnection, sql: str) -> object:
    return (await connection.execute(text(sql))).scalar_one()


async def server_facts(engine: AsyncEngine) -> ServerFacts:
    """The server's version and connection limits, in one connection."""
    async with engine.connect() as connection:
        name = engine.dialect.name
        if name == "postgresql":
            return ServerFacts(
                version=str(await _scalar(connection, "SELECT version()")),
                max_connections=int(str(await _scalar(connection, "SHOW max_connections"))),
                connections_in_use=int(
                    str(await _scalar(connection, "SELECT count(*) FROM pg_stat_activity"))
                ),
                wait_timeout=None,
            )
        if name in ("mysql", "mariadb"):
            in_use = (await connection.execute(text("SHOW STATUS LIKE 'Threads_connected'"))).one()
            return ServerFacts(
                version=str(await _scalar(connection, "SELECT version()")),
                max_connections=int(str(await _scalar(connection, "SELECT @@max_connections"))),
                connections_in_use=int(in_use[1]),
                wait_timeout=int(str(await _scalar(connection, "SELECT @@wait_timeout"))),
            )
        if name == "sqlite":
            version = await _scalar(connection, "SELECT sqlite_version()")
            return ServerFacts(f"SQLite {version}", None, None, None)
        version = await _scalar(connection, "SELECT @@VERSION")
        return ServerFacts(str(version), None, None, None)


@dataclass(frozen=True)
class ConnectionBudget:
    """Can every worker fill its pool without exceeding the server's max_connections?"""

    workers: int
    pool_size: int
    max_overflow: int
    max_connections: int | None
    reserve: int

    @property
    def needed(self) -> int:
        return self.workers * (self.pool_size + self.max_overflow)

    @property
    def available(self) -> int | None:
        if self.max_connections is None:
            return None
        return self.max_connections - self.reserve

    @property
    def ok(self) -> bool:
        return self.available is None or self.needed <= self.available

    def describe(self) -> str:
        needed = (
            f"workers x (pool_size + max_overflow) = {self.workers} x "
            f"({self.pool_size} + {self.max_overflow}) = {self.needed} connections"
        )
        if self.available is None:
            return f"{needed}; the database sets no connection limit"
        limit = (
            f"the server's max_connections {self.max_connections} - reserve {self.reserve}"
            f" = {self.available}"
        )
        if self.ok:
            return f"{needed}, within {limit}"
        return (
            f"{needed}, but {limit}. Lower CATALOG_POOL_SIZE, CATALOG_MAX_OVERFLOW or the "
            "number of workers (CATALOG_WORKERS / --workers), or raise max_connections at "
            "the server; CATALOG_CONNECTION_BUDGET_CHECK=false starts anyway"
        )


def connection_budget(settings: BudgetSettings, facts: ServerFacts) -> ConnectionBudget:
    """The budget of `settings` against the server described by `facts`."""
    return ConnectionBudget(
        workers=settings.workers,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        max_connections=facts.max_connections,
        reserve=settings.connection_reserve,
    )


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
