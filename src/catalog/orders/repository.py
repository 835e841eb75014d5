"""Every query on orders (their stock changes are queries on products: products.repository)."""

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db.base import utcnow
from catalog.orders.models import Order, OrderStatus

__all__ = [
    "add",
    "cancel_if_placed",
    "count_for_user",
    "get_by_idempotency_key",
    "get_for_user",
    "list_for_user",
]


async def add(session: AsyncSession, order: Order) -> Order:
    """Insert the order and its lines now."""
    session.add(order)
    await session.flush()
    return order


async def get_for_user(session: AsyncSession, order_id: int, user_id: int) -> Order | None:
    """The order if it belongs to `user_id`; others' orders are as good as missing."""
    statement = select(Order).where(Order.id == order_id, Order.user_id == user_id)
    return (
        await session.scalars(statement.execution_options(populate_existing=True))
    ).one_or_none()


async def get_by_idempotency_key(session: AsyncSession, user_id: int, key: str) -> Order | None:
    """The order `user_id` placed with this Idempotency-Key, if any."""
    statement = select(Order).where(Order.user_id == user_id, Order.idempotency_key == key)
    return (await session.scalars(statement)).one_or_none()


async def list_for_user(
    session: AsyncSession, user_id: int, *, limit: int, offset: int
) -> Sequence[Order]:
    """The user's orders, newest first."""
    statement = (
        select(Order)
        .where(Order.user_id == user_id)
        .order_by(Order.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return (await session.scalars(statement)).all()


async def count_for_user(session: AsyncSession, user_id: int) -> int:
    """How many orders the user has."""
    statement = select(func.count()).select_from(Order).where(Order.user_id == user_id)
    return (await session.execute(statement)).scalar_one()


async def cancel_if_placed(session: AsyncSession, order_id: int, user_id: int) -> bool:
    """Mark the user's order cancelled if it is still placed; False if no row matched."""
    statement = (
        update(Order)
        .where(
            Order.id == order_id,
            Order.user_id == user_id,
            Order.status == OrderStatus.PLACED.value,
        )
        .values(status=OrderStatus.CANCELLED.value, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await session.execute(statement))
    return result.rowcount == 1
