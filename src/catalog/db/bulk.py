"""Bulk loading: rows in at the driver's fastest, indexes built once after the load.

Keeping secondary indexes up to date row by row is what makes a large load slow: every
row lands at a random place in every index, and once the indexes outgrow the cache
each insert reads pages from disk. Building an index afterwards is one sort. On SQLite
the same holds for triggers that maintain a full-text table one row at a time.

The index definitions are read back from the database itself (PostgreSQL's
pg_get_indexdef, SQLite's sqlite_master, MariaDB's information_schema), so they come
back exactly as the migrations made them. Indexes that enforce a constraint (primary
key, unique SKU) stay: the load must still be checked against them.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Dialect, Table, insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "begin_bulk",
    "indexes_built_after",
    "insert_rows",
    "settle",
    "storage_rows",
    "transactional_ddl",
]

# Statements that create what was dropped, in order.
_Rebuild = list[str]


def transactional_ddl(connection: AsyncConnection) -> bool:
    """Whether dropping and creating indexes is part of the transaction (and so undone
    with it). MariaDB/MySQL commit at every DDL statement."""
    return connection.dialect.name in ("postgresql", "sqlite")


async def begin_bulk(connection: AsyncConnection) -> None:
    """Start the load's transaction.

    SQLite: an explicit BEGIN IMMEDIATE. The driver would only begin at the first
    INSERT, leaving the index drops before it outside the transaction; IMMEDIATE takes
    the write lock at once instead of failing to upgrade a read lock later.
    """
    if connection.dialect.name == "sqlite":
        await connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        await connection.begin()


# Per dialect: the table's droppable objects as (kind, name, the SQL that makes it).
_LISTINGS = {
    # Indexes that back a constraint (primary key, unique SKU) are left out: they stay.
    "postgresql": "SELECT 'INDEX', index_class.relname, pg_get_indexdef(index_class.oid) "
    "FROM pg_index JOIN pg_class index_class ON index_class.oid = pg_index.indexrelid "
    "WHERE pg_index.indrelid = CAST(:table AS regclass) AND NOT EXISTS "
    "(SELECT 1 FROM pg_constraint WHERE pg_constraint.conindid = pg_index.indexrelid)",
    # sql IS NULL marks the indexes SQLite made for a constraint: they stay.
    "sqlite": "SELECT upper(type), name, sql FROM sqlite_master WHERE tbl_name = :table "
    "AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name",
}


async def _drop_listed(connection: AsyncConnection, table: str) -> _Rebuild:
    result = await connection.execute(text(_LISTINGS[connection.dialect.name]), {"table": table})
    rebuild: _Rebuild = []
    for kind, name, definition in result.all():
        await connection.exec_driver_sql(f'DROP {kind} "{name}"')
        rebuild.append(definition)
    return rebuild


async def _drop_mysql(connection: AsyncConnection, table: str) -> _Rebuild:
    result = await connection.execute(
        text(
            "SELECT index_name, index_type, column_name, sub_part, collation "
            "FROM information_schema.statistics WHERE table_schema = DATABASE() "
            "AND table_name = :table AND non_unique = 1 ORDER BY index_name, seq_in_index"
        ),
        {"table": table},
    )
    indexes: dict[tuple[str, str], list[str]] = {}
    for name, kind, column, prefix, order in result.all():
        part = f"`{column}`" + (f"({prefix})" if prefix else "")
        indexes.setdefault((name, kind), []).append(part + (" DESC" if order == "D" else ""))
    if not indexes:
        return []
    await connection.exec_driver_sql(
        f"ALTER TABLE `{table}` " + ", ".join(f"DROP INDEX `{name}`" for name, _ in indexes)
    )
    plain = [
        f"ADD INDEX `{name}` ({', '.join(parts)})"
        for (name, kind), parts in indexes.items()
        if kind != "FULLTEXT"
    ]
    # InnoDB builds one FULLTEXT index per statement; the plain ones share one table scan.
    rebuild = [f"ALTER TABLE `{table}` " + ", ".join(plain)] if plain else []
    rebuild += [
        f"ALTER TABLE `{table}` ADD FULLTEXT INDEX `{name}` ({', '.join(parts)})"
        for (name, kind), parts in indexes.items()
        if kind == "FULLTEXT"
    ]
    return rebuild


_DROPS = {
    "postgresql": _drop_listed,
    "sqlite": _drop_listed,
    "mysql": _drop_mysql,
    "mariadb": _drop_mysql,
}


@asynccontextmanager
async def indexes_built_after(connection: AsyncConnection, table: str) -> AsyncIterator[None]:
    """Drop `table`'s secondary indexes (and its triggers on SQLite) for the body, and
    build them again after it.

    Where DDL is transactional (PostgreSQL, SQLite) all of it belongs to the caller's
    transaction: a failed load rolls back to the indexes as they were. MariaDB/MySQL
    commit at each ALTER, so there the indexes are rebuilt even when the body fails.
    Other dialects load with their indexes in place.
    """
    drop = _DROPS.get(connection.dialect.name)
    rebuild = await drop(connection, table) if drop is not None else []
    if transactional_ddl(connection):
        yield
        await _run(connection, rebuild)
        return
    try:
        yield
    finally:
        if connection.in_transaction():
            await connection.commit()
        await _run(connection, rebuild)


async def _run(connection: AsyncConnection, statements: Sequence[str]) -> None:
    for statement in statements:
        await connection.exec_driver_sql(statement)


async def settle(connection: AsyncConnection, table: str) -> None:
    """Leave `table` as the service reads it after a bulk load; with no transaction
    open on `connection`.

    The planner's statistics everywhere (ANALYZE). On PostgreSQL, VACUUM too: a table
    just loaded has an empty visibility map, so every index-only scan still reads the
    heap until autovacuum comes by, minutes later; at a million products that made the
    page reads 2 to 20 times slower, and the VACUUM itself takes about a second
    (docs/benchmarks.md, "A million products: what a bulk load leaves").
    """
    name = connection.dialect.name
    if name == "postgresql":
        # VACUUM cannot run inside a transaction block.
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql(f'VACUUM (ANALYZE) "{table}"')
    elif name == "sqlite":
        await connection.exec_driver_sql(f'ANALYZE "{table}"')
        await connection.commit()
    elif name in ("mysql", "mariadb"):
        await connection.exec_driver_sql(f"ANALYZE TABLE `{table}`")
        await connection.commit()


def storage_rows(
    table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], dialect: Dialect
) -> list[tuple[Any, ...]]:
    """`rows` converted the way the columns' types store them on `dialect`
    (e.g. SQLite's integer cents), ready for the driver."""
    # The dialect's own implementation of each type, as SQLAlchemy binds it itself.
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    ]
    if not rows:
        return []
    # Column by column: one map() per typed column instead of a branch per value.
    by_column = [
        values if process is None else list(map(process, values))
        for process, values in zip(processors, zip(*rows, strict=True), strict=True)
    ]
    return list(zip(*by_column, strict=True))


async def insert_rows(
    connection: AsyncConnection, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """Insert driver-ready `rows` at the driver's fastest: PostgreSQL's COPY through
    asyncpg, otherwise one executemany (a multi-row INSERT with asyncmy, a statement
    prepared once and stepped per row in C with sqlite3)."""
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "asyncpg":
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            table.name, records=rows, columns=list(columns)
        )
        return
    statement = insert(table).compile(dialect=connection.dialect, column_keys=list(columns))
    if list(statement.positiontup or ()) != list(columns):
        # The rows are positional: their order must be the statement's (the table's).
        raise ValueError(f"columns must be {statement.positiontup}, in that order")
    await connection.exec_driver_sql(str(statement), rows)
