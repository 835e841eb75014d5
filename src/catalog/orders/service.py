"""Rules of the orders domain. Flushes, never commits: the request's session does."""

import hashlib
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db.errors import ConstraintKind, violates
from catalog.db.retry import retry_transaction
from catalog.errors import ConflictError, NotFoundError, ValidationError
from catalog.orders import repository
from catalog.orders.models import Order, OrderLine, OrderStatus
from catalog.orders.schemas import OrderCreate, OrderPage, OrderRead
from catalog.products import repository as products
from catalog.products.schemas import MAX_STOCK

__all__ = ["cancel", "get", "list_orders", "place"]


def _request_hash(data: OrderCreate) -> str:
    # The lines in product order: the same order listed in another order is a retry.
    lines = sorted(data.items, key=lambda line: line.product_id)
    canonical = "|".join(f"{line.product_id}x{line.quantity}" for line in lines)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(order: Order, request_hash: str) -> Order:
    if order.request_hash != request_hash:
        message = "was used for a different order; use a new key for a new order"
        raise ValidationError(
            f"This Idempotency-Key {message}.",
            errors=[{"loc": ["header", "Idempotency-Key"], "msg": message, "type": "key_reused"}],
        )
    return order


async def _take_stock_and_write(
    session: AsyncSession,
    user_id: int,
    data: OrderCreate,
    idempotency_key: str | None,
    request_hash: str,
) -> Order:
    # Rows are locked in id order, whatever order the client listed them in: two orders
    # for the same products always queue instead of deadlocking.
    lines = sorted(data.items, key=lambda line: line.product_id)
    short = [
        line.product_id
        for line in lines
        if not await products.take_stock(session, line.product_id, line.quantity)
    ]
    if short:
        # Raising rolls the whole request back: the stock taken for other lines returns.
        existing = await products.existing_ids(session, short)
        if unknown := [product_id for product_id in short if product_id not in existing]:
            raise NotFoundError(f"There is no product with id {unknown[0]}.", unknown=unknown)
        raise ConflictError(
            "Not enough stock for some products; nothing was ordered.", short_of_stock=short
        )
    prices = await products.prices(session, (line.product_id for line in lines))
    order = Order(
        user_id=user_id,
        status=OrderStatus.PLACED.value,
        total=sum((prices[line.product_id] * line.quantity for line in lines), Decimal("0.00")),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        lines=[
            OrderLine(
                product_id=line.product_id,
                quantity=line.quantity,
                unit_price=prices[line.product_id],
            )
            for line in lines
        ],
    )
    return await repository.add(session, order)


async def place(
    *, session: AsyncSession, user_id: int, data: OrderCreate, idempotency_key: str | None
) -> Order:
    """Take the stock and write the order in one transaction, or change nothing."""
    request_hash = _request_hash(data)
    if idempotency_key is not None:
        existing = await repository.get_by_idempotency_key(session, user_id, idempotency_key)
        if existing is not None:
            return _replay(existing, request_hash)
    try:
        return await retry_transaction(
            session,
            lambda: _take_stock_and_write(session, user_id, data, idempotency_key, request_hash),
        )
    except IntegrityError as error:
        dialect = session.get_bind().dialect.name
        if idempotency_key is None or not violates(error, dialect, ConstraintKind.UNIQUE):
            raise
        # A concurrent retry with the same key placed the order first: undo this one's
        # stock changes and answer with that order.
        await session.rollback()
        existing = await repository.get_by_idempotency_key(session, user_id, idempotency_key)
        if existing is None:
            raise
        return _replay(existing, request_hash)


async def get(*, session: AsyncSession, user_id: int, order_id: int) -> Order:
    """The user's order; anyone else's is NotFoundError."""
    order = await repository.get_for_user(session, order_id, user_id)
    if order is None:
        raise NotFoundError(f"You have no order with id {order_id}.")
    return order


async def list_orders(*, session: AsyncSession, user_id: int, limit: int, offset: int) -> OrderPage:
    """The user's orders, newest first, with the total count."""
    orders = await repository.list_for_user(session, user_id, limit=limit, offset=offset)
    return OrderPage(
        items=[OrderRead.model_validate(order) for order in orders],
        total=await repository.count_for_user(session, user_id),
        limit=limit,
        offset=offset,
    )


async def cancel(*, session: AsyncSession, user_id: int, order_id: int) -> Order:
    """Cancel a placed order and give its stock back, in the same transaction."""
    if not await repository.cancel_if_placed(session, order_id, user_id):
        await get(session=session, user_id=user_id, order_id=order_id)  # 404 if not theirs
        raise ConflictError(f"Order {order_id} is already cancelled.")
    order = await get(session=session, user_id=user_id, order_id=order_id)
    for line in sorted(order.lines, key=lambda line: line.product_id):
        if not await products.restore_stock(
            session, line.product_id, line.quantity, at_most=MAX_STOCK
        ):
            # Raising rolls the whole cancel back: the order stays placed, nothing changes.
            raise ConflictError(
                f"Cancelling would raise the stock of product {line.product_id} above "
                f"{MAX_STOCK:,}, the most a product can have; lower its stock first.",
                product_id=line.product_id,
            )
    return order
