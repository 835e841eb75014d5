"""Liveness and readiness probes."""

import asyncio
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.config import SettingsDep
from catalog.db.pool import PoolSnapshot, pool_snapshot
from catalog.db.session import EngineDep
from catalog.errors import ServiceUnavailableError, problem_responses

__all__ = ["router"]

router = APIRouter(prefix="/health", tags=["health"])


class HealthStatus(BaseModel):
    status: Literal["ok"] = "ok"


@router.get("/live")
async def live() -> HealthStatus:
    """The process is up and serving HTTP. Touches no database."""
    return HealthStatus()


async def _round_trip(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


@router.get("/ready", responses=problem_responses(503))
async def ready(engine: EngineDep, settings: SettingsDep) -> HealthStatus:
    """The database answers a round trip within `CATALOG_READY_TIMEOUT` seconds; 503 if not."""
    try:
        await asyncio.wait_for(_round_trip(engine), timeout=settings.ready_timeout)
    except Exception as exc:
        raise ServiceUnavailableError(
            f"The database did not answer within {settings.ready_timeout} s: {type(exc).__name__}"
        ) from exc
    return HealthStatus()


@router.get("/pool")
async def pool(engine: EngineDep) -> PoolSnapshot:
    """A snapshot of this worker's connection pool, for people. Borrows no connection."""
    return pool_snapshot(engine.sync_engine.pool)
