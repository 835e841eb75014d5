"""Every query on the products table."""

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.products.models import Product

__all__ = ["add", "count", "delete", "flush", "get", "list_page"]


async def get(session: AsyncSession, product_id: int) -> Product | None:
    """The product with this id, or None."""
    return await session.get(Product, product_id)


async def list_page(session: AsyncSession, *, limit: int, offset: int) -> Sequence[Product]:
    """Products ordered by id, `limit` of them from `offset`."""
    statement = select(Product).order_by(Product.id).limit(limit).offset(offset)
    return (await session.scalars(statement)).all()


async def count(session: AsyncSession) -> int:
    """How many products there are."""
    return (await session.execute(select(func.count()).select_from(Product))).scalar_one()


async def add(session: AsyncSession, product: Product) -> Product:
    """Insert `product` now, so that constraint violations surface here."""
    session.add(product)
    await session.flush()
    return product


async def flush(session: AsyncSession) -> None:
    """Send pending changes now (UPDATE ... WHERE version = <read>)."""
    await session.flush()


async def delete(session: AsyncSession, product: Product) -> None:
    """Delete `product` now."""
    await session.delete(product)
    await session.flush()
