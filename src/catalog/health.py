"""Liveness and readiness probes."""

import asyncio
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from catalog.config import SettingsDep
from catalog.db.pool import PoolSnapshot, pool_snapshot
from catalog.db.server import round_trip
from catalog.db.session import EngineDep
from catalog.errors import ServiceUnavailableError
from catalog.operators import OperatorsOnly
from catalog.problems import problem_examples

__all__ = ["router"]

router = APIRouter(prefix="/health", tags=["health"])


class HealthStatus(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"] = "ok"


@router.get("/live")
async def live() -> HealthStatus:
    """The process is up and serving HTTP. Touches no database."""
    return HealthStatus()


# Probes given up on, still cleaning up (closing a connection to a hung server can
# take seconds); kept referenced so they finish in the background.
_abandoned_probes: set[asyncio.Task[None]] = set()


def _forget(task: asyncio.Task[None]) -> None:
    _abandoned_probes.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" warning


@router.get(
    "/ready",
    responses=problem_examples(service_unavailable="The database did not answer within 2.0 s."),
)
async def ready(engine: EngineDep, settings: SettingsDep) -> HealthStatus:
    """The database answers a round trip within `CATALOG_READY_TIMEOUT` seconds; 503 if not."""
    probe = asyncio.create_task(round_trip(engine))
    done, _ = await asyncio.wait({probe}, timeout=settings.ready_timeout)
    if not done:
        # Answer now: asyncio.wait_for would also wait for the cancelled probe to clean
        # up, and closing a connection to a hung server can take seconds more.
        probe.cancel()
        _abandoned_probes.add(probe)
        probe.add_done_callback(_forget)
        raise ServiceUnavailableError(
            f"The database did not answer within {settings.ready_timeout} s."
        )
    if (error := probe.exception()) is not None:
        raise ServiceUnavailableError(
            f"The database cannot be reached: {type(error).__name__}."
        ) from error
    return HealthStatus()


@router.get(
    "/pool",
    dependencies=[OperatorsOnly],
    responses=problem_examples(unauthorized="This needs CATALOG_METRICS_TOKEN as a bearer token."),
)
async def pool(engine: EngineDep) -> PoolSnapshot:
    """A snapshot of this worker's connection pool, for people. Borrows no connection."""
    return pool_snapshot(engine.sync_engine.pool)
