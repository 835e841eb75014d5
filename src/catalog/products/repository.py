"""Every query on the products table, the stock changes of orders included.

Reads for public routes take the request's Reader; writes, and the reads that serve
them, take the request's session (the ORM to insert, Core statements to change); both
return rows. Bulk work (import, seed) takes a connection. Every change to a product
moves its version here (`_changed`).
"""

import json
from collections.abc import Collection, Iterable, Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Row,
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from catalog.db.base import utcnow
from catalog.db.explain import Explain
from catalog.db.session import Reader
from catalog.products.models import Product
from catalog.products.schemas import ProductFilters, ProductSort
from catalog.products.search import Search, search

__all__ = [
    "add",
    "categories",
    "count_all",
    "count_matching",
    "delete_if_version",
    "estimate_matching",
    "existing_ids",
    "get",
    "is_empty",
    "list_page",
    "page_after",
    "prices",
    "read",
    "read_many",
    "rebuild_text_index",
    "restore_stock",
    "take_stock",
    "update_if_version",
    "upsert",
]


def _changed(**values: Any) -> dict[str, Any]:
    """`values`, and what every change to a product also sets: the next version (its
    ETag, which If-Match compares) and the time of the change. The one place both move;
    each change is one guarded UPDATE, so the ORM's own versioning is not used."""
    return {**values, "version": Product.version + 1, "updated_at": utcnow()}


# One reading of a product, by the Reader (a GET) or in the request's session (a write
# that answers with the product). Built once: a statement object reused keeps its cache
# key, so a read neither builds nor keys the SELECT again, only looks up its compiled form.
_PRODUCTS = Product.__table__
_BY_ID = select(_PRODUCTS).where(_PRODUCTS.c.id == bindparam("product_id"))


async def read(reader: Reader, product_id: int) -> Row[Any] | None:
    """The product with this id as stored now, or None (for a GET)."""
    return await reader.one_or_none(_BY_ID, {"product_id": product_id})


async def get(session: AsyncSession, product_id: int) -> Row[Any] | None:
    """The product with this id as the request's transaction sees it now, or None (for
    a write: after its guarded UPDATE, the row it left)."""
    return (await session.execute(_BY_ID, {"product_id": product_id})).one_or_none()


_C = _PRODUCTS.c
# An expanding IN: one cached statement for any number of ids.
_BY_IDS = select(_PRODUCTS).where(_C.id.in_(bindparam("product_ids", expanding=True)))


async def read_many(
    source: Reader | AsyncSession, product_ids: Iterable[int]
) -> Sequence[Row[Any]]:
    """The products with these ids that exist: by the Reader (a cart), or in the
    request's session where it already holds a connection (a page of orders)."""
    params = {"product_ids": list(product_ids)}
    if isinstance(source, Reader):
        return await source.all(_BY_IDS, params)
    return (await source.execute(_BY_IDS, params)).all()


def _conditions(filters: ProductFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.category is not None:
        conditions.append(_C.category == filters.category)
    if filters.price_min is not None:
        conditions.append(_C.price >= filters.price_min)
    if filters.price_max is not None:
        conditions.append(_C.price <= filters.price_max)
    if filters.created_after is not None:
        conditions.append(_C.created_at > filters.created_after)
    if filters.created_before is not None:
        conditions.append(_C.created_at < filters.created_before)
    if filters.in_stock is True:
        conditions.append(_C.stock > 0)
    elif filters.in_stock is False:
        conditions.append(_C.stock == 0)
    return conditions


def _keyset(key: ColumnElement[Any], descending: bool, value: Any, last_id: int) -> Any:
    # (key, id) strictly after the last row sent. Spelled out rather than as a row-value
    # comparison, which not every dialect turns into an index range scan; the redundant
    # bound on the key alone is what lets every planner start the index scan at the
    # cursor instead of reading (and skipping) every row before it.
    if descending:
        return and_(key <= value, or_(key < value, and_(key == value, _C.id < last_id)))
    return and_(key >= value, or_(key > value, and_(key == value, _C.id > last_id)))


def _filtered(statement: Any, filters: ProductFilters, dialect: str) -> tuple[Any, Search | None]:
    conditions = _conditions(filters)
    if conditions:
        statement = statement.where(*conditions)
    if filters.q is None:
        return statement, None
    found = search(dialect, filters.q)
    return found.apply(statement), found


def _paged(
    statement: Select[Any], key: ColumnElement[Any], descending: bool, ties_descending: bool
) -> Select[Any]:
    # In `key` order, ties by id, with the key last as `sort_key`; LIMIT and OFFSET as
    # binds, so that one statement serves every page.
    order = [key.desc() if descending else key.asc()]
    if key is not _C.id:
        order.append(_C.id.desc() if ties_descending else _C.id.asc())
    return (
        statement.add_columns(key.label("sort_key"))
        .order_by(*order)
        .limit(bindparam("page_limit"))
        .offset(bindparam("page_offset"))
    )


# Built once per sort: the first page of an unfiltered listing, the busiest there is,
# neither builds its SELECT nor computes its cache key again.
_PAGED = {
    sort: _paged(select(_PRODUCTS), _C[sort.column], sort.descending, sort.descending)
    for sort in ProductSort
    if sort is not ProductSort.RELEVANCE
}


async def list_page(
    reader: Reader,
    *,
    filters: ProductFilters,
    sort: ProductSort,
    limit: int,
    offset: int = 0,
    after: tuple[Any, int] | None = None,
) -> Sequence[Row[Any]]:
    """Matching products in `sort` order (ties by id): `limit` of them after the row
    `after` (its sort key and id), or from `offset`; as rows, each with its sort key
    last (labelled `sort_key`)."""
    if sort is ProductSort.RELEVANCE:
        statement, found = _filtered(select(_PRODUCTS), filters, reader.dialect.name)
        if found is None:
            raise ValueError("relevance needs a search")
        # Most relevant first; equally relevant ones in id order.
        statement = _paged(statement, found.rank, descending=True, ties_descending=False)
        if after is not None:
            value, last_id = after
            rank = found.rank
            statement = statement.where(or_(rank < value, and_(rank == value, _C.id > last_id)))
    else:
        statement, _ = _filtered(_PAGED[sort], filters, reader.dialect.name)
        if after is not None:
            value, last_id = after
            if sort.column == "id":
                statement = statement.where(_C.id < last_id if sort.descending else _C.id > last_id)
            else:
                key = _C[sort.column]
                statement = statement.where(_keyset(key, sort.descending, value, last_id))
    return await reader.all(statement, {"page_limit": limit, "page_offset": offset})


# The categories in use, in order. DISTINCT on the leading column of
# ix_products_category_price_id: an index-only read on every dialect.
_CATEGORIES = (
    select(_C.category)
    .where(_C.category.is_not(None))
    .distinct()
    .order_by(_C.category)
    .limit(bindparam("category_limit"))
)


async def categories(reader: Reader, *, limit: int) -> list[str]:
    """The first `limit` categories that some product has, in order."""
    rows = await reader.all(_CATEGORIES, {"category_limit": limit})
    return [row.category for row in rows]


async def count_matching(reader: Reader, filters: ProductFilters) -> int:
    """How many products match, counted."""
    statement, _ = _filtered(
        select(func.count()).select_from(_PRODUCTS), filters, reader.dialect.name
    )
    return int(await reader.scalar_one(statement))


async def estimate_matching(reader: Reader, filters: ProductFilters) -> int | None:
    """The planner's estimate of how many products match (PostgreSQL, MariaDB/MySQL);
    None where the database has no planner estimate to give (SQLite)."""
    dialect = reader.dialect.name
    statement, _ = _filtered(select(_PRODUCTS.c.id), filters, dialect)
    # The filters' values are bound parameters, never SQL text.
    if dialect == "postgresql":
        plan = await reader.scalar_one(Explain(statement))
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])
    if dialect in ("mysql", "mariadb"):
        rows = await reader.all(Explain(statement))
        return int(rows[0]._mapping["rows"] or 0) if rows else 0
    return None


async def page_after(session: AsyncSession, *, after_id: int, limit: int) -> Sequence[Product]:
    """Up to `limit` products with an id above `after_id`, by id (keyset: no OFFSET scan)."""
    statement = select(Product).where(Product.id > after_id).order_by(Product.id).limit(limit)
    return (await session.scalars(statement)).all()


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
        .values(_changed(**values))
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


async def take_stock(session: AsyncSession, product_id: int, quantity: int) -> bool:
    """Take `quantity` units if that many are in stock, in one guarded statement.

    UPDATE ... WHERE stock >= :quantity never oversells, whatever the isolation level
    (MariaDB's REPEATABLE READ would lose updates with a read then a write), and works
    where SELECT ... FOR UPDATE does not exist (SQLite). It also locks the row until
    the transaction ends, so the price read next is the one this order pays.
    """
    statement = (
        update(Product)
        .where(Product.id == product_id, Product.stock >= quantity)
        .values(_changed(stock=Product.stock - quantity))
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await session.execute(statement))
    return result.rowcount == 1


async def restore_stock(
    session: AsyncSession, product_id: int, quantity: int, *, at_most: int
) -> bool:
    """Give back `quantity` units (a cancelled order) if the stock stays at or below
    `at_most`; False if it would not (or the product is gone)."""
    statement = (
        update(Product)
        .where(Product.id == product_id, Product.stock <= at_most - quantity)
        .values(_changed(stock=Product.stock + quantity))
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await session.execute(statement))
    return result.rowcount == 1


async def existing_ids(session: AsyncSession, product_ids: Iterable[int]) -> set[int]:
    """Which of `product_ids` exist."""
    statement = select(Product.id).where(Product.id.in_(list(product_ids)))
    return set((await session.scalars(statement)).all())


async def prices(session: AsyncSession, product_ids: Iterable[int]) -> dict[int, Decimal]:
    """The current price of each product."""
    statement = select(Product.id, Product.price).where(Product.id.in_(list(product_ids)))
    return {row.id: row.price for row in await session.execute(statement)}


_UPSERTED = ("name", "description", "price", "stock", "category")


async def upsert(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert `rows`, updating the products whose SKU exists (a new version each).

    PostgreSQL and SQLite: one statement run as an executemany, compiled once and cached
    (asyncpg and sqlite3 run it prepared, row by row in C). MySQL/MariaDB: one
    multi-row statement per batch, because the MySQL drivers' executemany batching
    cannot parse ON DUPLICATE KEY UPDATE. Elsewhere plain inserts: a taken SKU is an error.
    """
    dialect = connection.dialect.name
    if dialect in ("postgresql", "sqlite"):
        make: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = make(Product)
        excluded = statement.excluded
        upserted = statement.on_conflict_do_update(
            index_elements=["sku"], set_=_changed(**{name: excluded[name] for name in _UPSERTED})
        )
        await connection.execute(upserted, rows)
    elif dialect in ("mysql", "mariadb"):
        my_insert = mysql.insert(Product).values(rows)
        inserted = my_insert.inserted
        await connection.execute(
            my_insert.on_duplicate_key_update(
                _changed(**{name: inserted[name] for name in _UPSERTED})
            )
        )
    else:
        await connection.execute(insert(Product), rows)


async def count_all(engine: AsyncEngine) -> int:
    """How many products the database holds."""
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(Product))).scalar_one()


async def is_empty(connection: AsyncConnection) -> bool:
    """True when there is no product at all."""
    return not (await connection.execute(select(exists().select_from(Product)))).scalar_one()


async def rebuild_text_index(connection: AsyncConnection) -> None:
    """Fill the text index from the products table, after a bulk load that bypassed it.

    Only SQLite's FTS5 table needs it (its triggers were dropped for the load); the
    other dialects' text indexes are ordinary indexes, rebuilt with the rest.
    """
    if connection.dialect.name == "sqlite":
        await connection.exec_driver_sql(
            "INSERT INTO products_fts(products_fts) VALUES ('rebuild')"
        )
