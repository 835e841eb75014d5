"""The per-dialect options take effect on real connections."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import only_on


@only_on("postgresql")
async def test_postgresql_sessions_carry_the_safety_timeouts(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        statement = (await connection.execute(text("SHOW statement_timeout"))).scalar_one()
        idle = (
            await connection.execute(text("SHOW idle_in_transaction_session_timeout"))
        ).scalar_one()
        zone = (await connection.execute(text("SHOW timezone"))).scalar_one()
    assert statement == "30s"
    assert idle == "1min"
    assert zone == "UTC"


@only_on("mariadb")
async def test_mariadb_sessions_carry_the_safety_timeouts(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT @@session.max_statement_time, @@session.idle_transaction_timeout, "
                    "@@session.time_zone, @@character_set_connection"
                )
            )
        ).one()
    assert float(row[0]) == 30
    assert int(row[1]) == 60
    assert row[2] == "+00:00"
    assert row[3] == "utf8mb4"


@only_on("sqlite")
async def test_sqlite_connections_use_wal_and_foreign_keys(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
        foreign_keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
        busy = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        driver = (await connection.get_raw_connection()).driver_connection
    assert journal == "wal"
    assert foreign_keys == 1
    if engine.dialect.driver == "inline":
        # sqlite3 never sleeps on the loop's thread: the dialect waits, asynchronously.
        assert busy == 0
        assert driver.busy_timeout == 5.0
    else:
        assert busy == 5000
