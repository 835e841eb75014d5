"""What a connection pooler in front of the database allows: read from PgBouncer's admin
console, to check the connection budget against it (catalog.db.server)."""

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import psycopg

__all__ = ["PoolerError", "PoolerFacts", "pooler_facts"]


class PoolerError(RuntimeError):
    """The pooler's admin console could not be read; the message says why."""


@dataclass(frozen=True)
class PoolerFacts:
    version: str
    pool_mode: str
    # Clients the pooler accepts in all (max_client_conn).
    max_client_conn: int
    # Server connections it opens for the service's database, and the reserve it may
    # add when clients wait (pool_size and reserve_pool of SHOW DATABASES).
    pool_size: int
    reserve_pool: int

    @property
    def server_connections(self) -> int:
        return self.pool_size + self.reserve_pool


async def pooler_facts(admin_url: str, database: str, *, connect_timeout: float) -> PoolerFacts:
    """The limits of the PgBouncer whose admin console is at `admin_url`, for `database`.

    PgBouncer's console answers the simple query protocol only, from which asyncpg
    returns no rows; psycopg sends a query without parameters that way.
    """
    try:
        async with await psycopg.AsyncConnection.connect(
            admin_url, autocommit=True, connect_timeout=max(1, round(connect_timeout))
        ) as connection:
            version = await (await connection.execute("SHOW VERSION")).fetchone()
            config = {
                str(row[0]): str(row[1])
                for row in await (await connection.execute("SHOW CONFIG")).fetchall()
            }
            cursor = await connection.execute("SHOW DATABASES")
            columns = [column.name for column in cursor.description or ()]
            databases: list[dict[str, object]] = [
                dict(zip(columns, row, strict=True)) for row in await cursor.fetchall()
            ]
    except psycopg.Error as error:
        message = str(error)
        # libpq may quote the URL back (a malformed one): never the password.
        password = urlsplit(admin_url).password
        for secret in {password, unquote(password or "")} - {None, ""}:
            message = message.replace(str(secret), "***")
        raise PoolerError(f"cannot read the pooler's admin console: {message}") from None
    # The service's database, else the pooler's catch-all entry, else its defaults.
    entry = next((row for row in databases if row["name"] == database), None)
    if entry is None:
        entry = next((row for row in databases if row["name"] == "*"), {})

    def setting(column: str, name: str, default: object = None) -> int:
        value = entry.get(column) or config.get(name, default)
        if value is None:
            raise KeyError(name)
        return int(str(value))

    try:
        return PoolerFacts(
            version=str(version[0]) if version else "PgBouncer",
            pool_mode=str(entry.get("pool_mode") or config.get("pool_mode", "?")),
            max_client_conn=int(config["max_client_conn"]),
            pool_size=setting("pool_size", "default_pool_size"),
            reserve_pool=setting("reserve_pool", "reserve_pool_size", 0),
        )
    except (KeyError, ValueError) as error:
        raise PoolerError(f"the admin console is not PgBouncer's (no {error})") from None
