"""Checks made once when the service starts, before it accepts a request.

`catalog doctor` runs the same checks and prints what it found.
"""

import asyncio
import logging

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.config import Settings
from catalog.db.engine import behind_transaction_pooler, create_engine
from catalog.db.pooler import PoolerError, PoolerFacts, pooler_facts
from catalog.db.replica import ReplicaMonitor
from catalog.db.server import (
    ConnectionBudget,
    ServerFacts,
    connection_budget,
    recycle_problem,
    server_facts,
    timeout_problems,
)
from catalog.db.session import Reader
from catalog.models import migrations

__all__ = [
    "StartupCheckError",
    "budget_of",
    "check_database",
    "pooler_of",
    "replica_status",
    "timeout_advice",
]

logger = logging.getLogger(__name__)


class StartupCheckError(RuntimeError):
    """The database is not fit to be served; the message says what to do."""


async def pooler_of(settings: Settings) -> PoolerFacts | None:
    """The limits of the pooler in front of the database, when its console is configured."""
    if not behind_transaction_pooler(settings) or settings.pooler_admin_url is None:
        return None
    database = make_url(settings.database_url).database or ""
    return await pooler_facts(
        settings.pooler_admin_url.get_secret_value(),
        database,
        connect_timeout=settings.connect_timeout,
    )


def budget_of(
    settings: Settings, facts: ServerFacts, pooler: PoolerFacts | None
) -> ConnectionBudget:
    return connection_budget(
        settings, facts, behind_pooler=behind_transaction_pooler(settings), pooler=pooler
    )


def timeout_advice(settings: Settings, facts: ServerFacts) -> list[str]:
    """What is missing of the safety timeouts, and where to set it."""
    where = (
        "behind a pooler, set it where its server connections get it: ALTER ROLE ... SET, "
        "or PgBouncer's connect_query (docs/scale-out.md)"
        if behind_transaction_pooler(settings)
        else "check the server's and the role's settings"
    )
    return [f"{problem}; {where}" for problem in timeout_problems(facts)]


async def replica_status(settings: Settings, engine: AsyncEngine) -> str | None:
    """One check of the read replica, as the service's monitor makes them, in words."""
    if not settings.read_database_url:
        return None
    replica = create_engine(settings.replica_settings(), pooled=False)
    try:
        monitor = ReplicaMonitor(
            Reader(engine, in_transactions=True),
            replica,
            max_lag=settings.replica_max_lag,
            interval=settings.replica_check_interval,
            timeout=settings.ready_timeout,
        )
        if problem := await monitor.unsupported():
            label = make_url(settings.read_database_url).render_as_string(hide_password=True)
            return f"{label}: cannot be used: {problem}"
        # Two checks, as the service's monitor makes them: the first alone cannot tell
        # a replica a moment behind from one hours behind.
        await monitor.check()
        await asyncio.sleep(settings.replica_check_interval)
        await monitor.check()
    finally:
        await replica.dispose()
    state = monitor.state
    label = make_url(settings.read_database_url).render_as_string(hide_password=True)
    if state.usable:
        return f"{label}: serves reads ({state.reason})"
    return f"{label}: serves NO reads, they go to the primary: {state.reason}"


async def check_database(engine: AsyncEngine, settings: Settings) -> None:
    """Refuse to start on a schema that is not the code's, a pool the server would cut,
    or more connections than the server (or the pooler in front of it) accepts."""
    state = await migrations.state(engine)
    if not state.is_current:
        raise StartupCheckError(f"catalog cannot start: {state.problem()}")
    facts = await server_facts(engine)
    if problem := recycle_problem(settings, facts):
        raise StartupCheckError(f"catalog cannot start: {problem}")
    try:
        pooler = await pooler_of(settings)
    except PoolerError as error:
        message = f"catalog cannot start: {error} (CATALOG_POOLER_ADMIN_URL)"
        raise StartupCheckError(message) from None
    budget = budget_of(settings, facts, pooler)
    if settings.connection_budget_check and not budget.ok:
        raise StartupCheckError(f"catalog cannot start: {budget.describe()}")
    for advice in timeout_advice(settings, facts):
        logger.warning("%s", advice)
