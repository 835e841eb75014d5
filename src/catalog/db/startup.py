"""Checks made once when the service starts, before it accepts a request."""

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.config import Settings
from catalog.db.migrations import schema_state

__all__ = ["StartupCheckError", "check_database"]

logger = logging.getLogger(__name__)


class StartupCheckError(RuntimeError):
    """The database is not fit to be served; the message says what to do."""


async def check_database(engine: AsyncEngine, settings: Settings) -> None:
    """Refuse to start on a schema that is not the code's, or a pool the server will cut."""
    state = await schema_state(engine)
    if not state.is_current:
        raise StartupCheckError(f"catalog cannot start: {state.problem()}")
    if engine.dialect.name in ("mysql", "mariadb"):
        await _check_mysql_wait_timeout(engine, settings)


async def _check_mysql_wait_timeout(engine: AsyncEngine, settings: Settings) -> None:
    async with engine.connect() as connection:
        wait_timeout = int((await connection.execute(text("SELECT @@wait_timeout"))).scalar_one())
    if settings.pool_recycle <= 0 or settings.pool_recycle >= wait_timeout:
        raise StartupCheckError(
            f"catalog cannot start: CATALOG_POOL_RECYCLE={settings.pool_recycle} must be "
            f"between 1 and the server's wait_timeout ({wait_timeout} s), or pooled "
            "connections will be closed by the server while idle; lower CATALOG_POOL_RECYCLE"
        )
