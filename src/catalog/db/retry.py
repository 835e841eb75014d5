"""Run a transaction again when the database aborted it to break a deadlock."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db.errors import is_retryable

__all__ = ["retry_transaction"]

T = TypeVar("T")


async def retry_transaction(
    session: AsyncSession, work: Callable[[], Awaitable[T]], *, attempts: int = 3
) -> T:
    """Run `work`; on a deadlock or serialization failure roll back and run it again.

    `work` must be the whole of the request's transaction so far: the rollback here is
    the one place besides the request's session dependency that ends a transaction,
    and it only discards what the database had already thrown away.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except DBAPIError as error:
            if attempt == attempts or not is_retryable(error):
                raise
            await session.rollback()
            # Jittered backoff, so the transactions that collided do not collide again.
            await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311
    raise AssertionError("unreachable")
