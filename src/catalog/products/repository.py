"""Every query on the products table."""

import json
from collections.abc import Collection, Sequence
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    and_,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.db.base import utcnow
from catalog.products.models import Product
from catalog.products.schemas import ProductFilters, ProductSort

__all__ = [
    "add",
    "count",
    "count_matching",
    "delete_if_version",
    "estimate_matching",
    "get",
    "list_page",
    "page_after",
    "update_if_version",
]


async def get(session: AsyncSession, product_id: int) -> Product | None:
    """The product with this id as stored now, or None."""
    return await session.get(Product, product_id, populate_existing=True)


def _conditions(filters: ProductFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.category is not None:
        conditions.append(Product.category == filters.category)
    if filters.price_min is not None:
        conditions.append(Product.price >= filters.price_min)
    if filters.price_max is not None:
        conditions.append(Product.price <= filters.price_max)
    if filters.created_after is not None:
        conditions.append(Product.created_at > filters.created_after)
    if filters.created_before is not None:
        conditions.append(Product.created_at < filters.created_before)
    if filters.in_stock is True:
        conditions.append(Product.stock > 0)
    elif filters.in_stock is False:
        conditions.append(Product.stock == 0)
    return conditions


def _after(sort: ProductSort, key: Any, last_id: int) -> ColumnElement[bool]:
    # (key, id) strictly after the last row sent, in the sort's direction. Spelled out
    # rather than as a row-value comparison, which not every dialect turns into an
    # index range scan.
    column = getattr(Product, sort.column)
    if sort.descending:
        return or_(column < key, and_(column == key, Product.id < last_id))
    return or_(column > key, and_(column == key, Product.id > last_id))


async def list_page(
    session: AsyncSession,
    *,
    filters: ProductFilters,
    sort: ProductSort,
    limit: int,
    offset: int = 0,
    after: tuple[Any, int] | None = None,
) -> Sequence[Product]:
    """Matching products in `sort` order (ties by id): `limit` of them after the row
    `after` (its sort key and id), or from `offset`."""
    column = getattr(Product, sort.column)
    statement = select(Product).where(*_conditions(filters))
    if after is not None:
        if sort.column == "id":
            statement = statement.where(
                Product.id < after[1] if sort.descending else Product.id > after[1]
            )
        else:
            statement = statement.where(_after(sort, *after))
    order: list[Any] = (
        [column.desc(), Product.id.desc()] if sort.descending else [column, Product.id]
    )
    if sort.column == "id":
        order = order[:1]
    statement = statement.order_by(*order).limit(limit).offset(offset)
    return (await session.scalars(statement)).all()


async def count_matching(session: AsyncSession, filters: ProductFilters) -> int:
    """How many products match, counted."""
    statement = select(func.count()).select_from(Product).where(*_conditions(filters))
    return (await session.execute(statement)).scalar_one()


async def estimate_matching(session: AsyncSession, filters: ProductFilters) -> int | None:
    """The planner's estimate of how many products match (PostgreSQL, MariaDB/MySQL);
    None where the database has no planner estimate to give (SQLite)."""
    dialect = session.get_bind().dialect
    statement = select(Product.id).where(*_conditions(filters))
    if dialect.name == "postgresql":
        sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        plan = (await session.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"))).scalar_one()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])
    if dialect.name in ("mysql", "mariadb"):
        sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        rows = (await session.execute(text(f"EXPLAIN {sql}"))).mappings().all()
        return int(rows[0]["rows"] or 0) if rows else 0
    return None


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
