"""Checks made once when the service starts, before it accepts a request.

`catalog doctor` runs the same checks and prints what it found.
"""

from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.config import Settings
from catalog.db.server import connection_budget, recycle_problem, server_facts
from catalog.models import migrations

__all__ = ["StartupCheckError", "check_database"]


class StartupCheckError(RuntimeError):
    """The database is not fit to be served; the message says what to do."""


async def check_database(engine: AsyncEngine, settings: Settings) -> None:
    """Refuse to start on a schema that is not the code's, a pool the server would cut,
    or more connections than the server accepts."""
    state = await migrations.state(engine)
    if not state.is_current:
        raise StartupCheckError(f"catalog cannot start: {state.problem()}")
    facts = await server_facts(engine)
    if problem := recycle_problem(settings, facts):
        raise StartupCheckError(f"catalog cannot start: {problem}")
    budget = connection_budget(settings, facts)
    if settings.connection_budget_check and not budget.ok:
        raise StartupCheckError(f"catalog cannot start: {budget.describe()}")
