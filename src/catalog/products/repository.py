"""Every query on the products table."""

from collections.abc import Collection, Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db.base import utcnow
from catalog.products.models import Product

__all__ = [
    "add",
    "count",
    "delete_if_version",
    "get",
    "list_page",
    "page_after",
    "update_if_version",
]


async def get(session: AsyncSession, product_id: int) -> Product | None:
    """The product with this id as stored now, or None."""
    return await session.get(Product, product_id, populate_existing=True)


async def list_page(session: AsyncSession, *, limit: int, offset: int) -> Sequence[Product]:
    """Products ordered by id, `limit` of them from `offset`."""
    statement = select(Product).order_by(Product.id).limit(limit).offset(offset)
    return (await session.scalars(statement)).all()


async def page_after(session: AsyncSession, *, after_id: int, limit: int) -> Sequence[Product]:
    """Up to `limit` products with an id above `after_id`, by id (keyset: no OFFSET scan)."""
    statement = select(Product).where(Product.id > after_id).order_by(Product.id).limit(limit)
    return (await session.scalars(statement)).all()


async def count(session: AsyncSession) -> int:
    """How many products there are."""
    return (await session.execute(select(func.count()).select_from(Product))).scalar_one()


async def add(session: AsyncSession, product: Product) -> Product:
    """Insert `product` now, so that constraint violations surface here."""
    session.add(product)
    await session.flush()
    return product


async def update_if_version(
    session: AsyncSession,
    product_id: int,
    values: dict[str, Any],
    *,
    versions: Collection[int] | None,
) -> bool:
    """Set `values` and bump the version in one statement, if the product is at one of
    `versions` (any version when None). False when no row matched.

    One UPDATE, not a read then a write: concurrent changes cannot be lost in between,
    on any backend or isolation level.
    """
    statement = (
        update(Product)
        .where(Product.id == product_id)
        .values(**values, version=Product.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if versions is not None:
        statement = statement.where(Product.version.in_(versions))
    result = cast(CursorResult[Any], await session.execute(statement))
    return result.rowcount == 1


async def delete_if_version(
    session: AsyncSession, product_id: int, *, versions: Collection[int] | None
) -> bool:
    """Delete the product if it is at one of `versions` (any when None); False if no row matched."""
    statement = (
        delete(Product).where(Product.id == product_id).execution_options(synchronize_session=False)
    )
    if versions is not None:
        statement = statement.where(Product.version.in_(versions))
    result = cast(CursorResult[Any], await session.execute(statement))
    return result.rowcount == 1
