"""Every query on the products table, the stock changes of orders included.

Reads for public routes take the request's Reader; writes, and the reads that serve
them, take the request's session (the ORM to insert, Core statements to change); both
return rows. Bulk work (import, seed) takes a connection. Every change to a product
moves its version here (`_changed`).
"""

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Row,
    Select,
    Table,
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
from catalog.products.models import Category, Product
from catalog.products.schemas import ProductFilters, ProductSort, name_key
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
    "read_by_sku",
    "read_many",
    "rebuild_text_index",
    "recount_categories",
    "restore_stock",
    "take_stock",
    "update_if_version",
    "upsert",
]


def _changed(**values: Any) -> dict[str, Any]:
    """`values`, and what every change to a product also sets: the next version (its
    ETag, which If-Match compares) and the time of the change. The one place both move;
    each change is one guarded UPDATE, so the ORM's own versioning is not used. A new
    name comes with its sort key."""
    if isinstance(values.get("name"), str):
        values["name_key"] = name_key(values["name"])
    return {**values, "version": Product.version + 1, "updated_at": utcnow()}


# One reading of a product, by the Reader (a GET) or in the request's session (a write
# that answers with the product). Built once: a statement object reused keeps its cache
# key, so a read neither builds nor keys the SELECT again, only looks up its compiled form.
_PRODUCTS = Product.__table__
_BY_ID = select(_PRODUCTS).where(_PRODUCTS.c.id == bindparam("product_id"))


async def read(reader: Reader, product_id: int) -> Row[Any] | None:
    """The product with this id as stored now, or None (for a GET)."""
    return await reader.one_or_none(_BY_ID, {"product_id": product_id})


_BY_SKU = select(_PRODUCTS).where(_PRODUCTS.c.sku == bindparam("sku"))


async def read_by_sku(reader: Reader, sku: str) -> Row[Any] | None:
    """The product with exactly this SKU, or None (the unique index: one row at most)."""
    return await reader.one_or_none(_BY_SKU, {"sku": sku})


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
# neither builds its SELECT nor computes its cache key again. Backward (a Previous page:
# the rows before a cursor, nearest first) is the same order turned round.
_PAGED = {
    (sort, backward): _paged(
        select(_PRODUCTS), _C[sort.column], sort.descending != backward, sort.descending != backward
    )
    for sort in ProductSort
    if sort is not ProductSort.RELEVANCE
    for backward in (False, True)
}


async def list_page(
    reader: Reader,
    *,
    filters: ProductFilters,
    sort: ProductSort,
    limit: int,
    offset: int = 0,
    after: tuple[Any, int] | None = None,
    backward: bool = False,
) -> Sequence[Row[Any]]:
    """Matching products in `sort` order (ties by id): `limit` of them after the row
    `after` (its sort key and id), or from `offset`; as rows, each with its sort key
    last (labelled `sort_key`). `backward`: the `limit` rows before `after` instead,
    nearest first (the caller turns them round)."""
    if sort is ProductSort.RELEVANCE:
        statement, found = _filtered(select(_PRODUCTS), filters, reader.dialect.name)
        if found is None:
            raise ValueError("relevance needs a search")
        # Most relevant first; equally relevant ones in id order.
        rank = found.rank
        statement = _paged(statement, rank, descending=not backward, ties_descending=backward)
        if after is not None:
            value, last_id = after
            if backward:
                statement = statement.where(or_(rank > value, and_(rank == value, _C.id < last_id)))
            else:
                statement = statement.where(or_(rank < value, and_(rank == value, _C.id > last_id)))
    else:
        statement, _ = _filtered(_PAGED[sort, backward], filters, reader.dialect.name)
        if after is not None:
            value, last_id = after
            descending = sort.descending != backward
            if sort.column == "id":
                statement = statement.where(_C.id < last_id if descending else _C.id > last_id)
            else:
                key = _C[sort.column]
                statement = statement.where(_keyset(key, descending, value, last_id))
    return await reader.all(statement, {"page_limit": limit, "page_offset": offset})


# The categories some product has now, in order, with how many: a read of the small
# categories table that every product write keeps (see _count).
_CATEGORIES = cast(Table, Category.__table__)
_K = _CATEGORIES.c
_LISTED = (
    select(_K.name, _K.product_count)
    .where(_K.product_count > 0)
    .order_by(_K.name)
    .limit(bindparam("category_limit"))
)


async def categories(reader: Reader, *, limit: int) -> Sequence[Row[Any]]:
    """The first `limit` categories that some product has, in order, as rows of name
    and product_count."""
    return await reader.all(_LISTED, {"category_limit": limit})


def _dialect_of(source: AsyncSession | AsyncConnection) -> str:
    if isinstance(source, AsyncSession):
        return source.get_bind().dialect.name
    return source.dialect.name


def _gained_statement(dialect: str) -> Any:
    # One statement that adds to a category's count, creating its row the first time.
    values: dict[str, Any] = {
        "name": bindparam("category_name"),
        "product_count": bindparam("gained"),
    }
    if dialect in ("postgresql", "sqlite"):
        make: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = make(_CATEGORIES).values(values)
        return statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"product_count": _K.product_count + statement.excluded.product_count},
        )
    if dialect in ("mysql", "mariadb"):
        statement = mysql.insert(_CATEGORIES).values(values)
        return statement.on_duplicate_key_update(
            product_count=_K.product_count + statement.inserted.product_count
        )
    return None


_GAINED = {dialect: _gained_statement(dialect) for dialect in ("postgresql", "sqlite", "mysql")}
_GAINED["mariadb"] = _GAINED["mysql"]
_ADDED = (
    update(_CATEGORIES)
    .where(_K.name == bindparam("category_name"))
    .values(product_count=_K.product_count + bindparam("gained"))
)


async def _count(source: AsyncSession | AsyncConnection, moved: Mapping[str | None, int]) -> None:
    """Add `moved` (category: products gained, negative for products lost) to the
    categories' counts, in the caller's transaction.

    In name order: two writers that touch the same categories lock their rows in the
    same order, so they wait for each other instead of deadlocking. A count row is locked
    until the transaction ends, so product writes in one category take turns at their
    commit; orders, which never change a category, do not touch it.
    """
    dialect = _dialect_of(source)
    for name in sorted(name for name, gained in moved.items() if name is not None and gained):
        params = {"category_name": name, "gained": moved[name]}
        upsert_statement = _GAINED.get(dialect)
        if moved[name] < 0 or upsert_statement is None:
            result = cast(CursorResult[Any], await source.execute(_ADDED, params))
            if result.rowcount == 1 or moved[name] < 0:
                continue
            upsert_statement = insert(_CATEGORIES).values(
                name=bindparam("category_name"), product_count=bindparam("gained")
            )
        await source.execute(upsert_statement, params)


async def recount_categories(connection: AsyncConnection) -> None:
    """Count every category's products again, in the connection's transaction: after a
    bulk load, which writes products without going through _count."""
    await connection.execute(delete(_CATEGORIES))
    counted = (
        select(_C.category, func.count()).where(_C.category.is_not(None)).group_by(_C.category)
    )
    await connection.execute(insert(_CATEGORIES).from_select(["name", "product_count"], counted))


async def count_matching(reader: Reader, filters: ProductFilters) -> int:
    """How many products match, counted."""
    statement, _ = _filtered(
        select(func.count()).select_from(_PRODUCTS), filters, reader.dialect.name
    )
    return int(await reader.scalar_one(statement))


async def count_matching_up_to(reader: Reader, filters: ProductFilters, most: int) -> int:
    """How many products match, counted up to `most`: the scan stops there, so that
    the count of a broad search costs what reading `most` rows does."""
    matching, _ = _filtered(select(_C.id), filters, reader.dialect.name)
    bounded = matching.limit(bindparam("count_limit")).subquery()
    statement = select(func.count()).select_from(bounded)
    return int(await reader.scalar_one(statement, {"count_limit": most}))


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
    """Insert `product` now, so that constraint violations surface here, and count it
    in its category."""
    session.add(product)
    await session.flush()
    await _count(session, {product.category: 1})
    return product


# The product's category, its row locked until the transaction ends (PostgreSQL,
# MariaDB/MySQL); SQLite has no row locks, and there the write that follows is guarded
# by the category read instead (_same_category).
_CATEGORY_OF = select(_C.category).where(_C.id == bindparam("product_id")).with_for_update()
# Tries of a guarded write whose category read another writer overtook: SQLite only,
# and the first failed try takes the database's write lock, so the second cannot fail so.
_CATEGORY_TRIES = 3


def _same_category(category: str | None) -> ColumnElement[bool]:
    return _C.category.is_(None) if category is None else _C.category == category


async def _category_change(
    session: AsyncSession, product_id: int, guarded: Any, *, new: str | None, deleting: bool
) -> bool:
    """Run `guarded` (an UPDATE or DELETE of the product, with its own conditions) so
    that the categories' counts move with it: with the category the product had,
    read first and required by the statement. False when no row matched for another
    reason (no such product, or its version is not one of those asked for)."""
    for _ in range(_CATEGORY_TRIES):
        old = (await session.execute(_CATEGORY_OF, {"product_id": product_id})).one_or_none()
        if old is None:
            return False
        statement = guarded.where(_same_category(old.category))
        result = cast(CursorResult[Any], await session.execute(statement))
        if result.rowcount == 1:
            moved: Counter[str | None] = Counter({old.category: -1})
            if not deleting:
                moved[new] += 1
            await _count(session, moved)
            return True
        now = (await session.execute(_CATEGORY_OF, {"product_id": product_id})).one_or_none()
        if now is None or now.category == old.category:
            return False  # not the category: the version, or the product is gone
    raise RuntimeError(f"the category of product {product_id} kept changing")


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
    if "category" in values:
        return await _category_change(
            session, product_id, statement, new=values["category"], deleting=False
        )
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
    return await _category_change(session, product_id, statement, new=None, deleting=True)


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


_UPSERTED = ("name", "name_key", "description", "price", "stock", "category")


# The categories of the products with these SKUs, their rows locked (PostgreSQL,
# MariaDB/MySQL; SQLite's import batches hold the database's write lock already).
_CATEGORIES_OF_SKUS = (
    select(_C.sku, _C.category)
    .where(_C.sku.in_(bindparam("skus", expanding=True)))
    .with_for_update()
)


async def upsert(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Insert `rows`, updating the products whose SKU exists (a new version each), and
    move the categories' counts with them. The caller's transaction must hold the
    write lock on SQLite (db.bulk.begin_bulk), so that the categories read first are
    still those the upsert replaces.

    PostgreSQL and SQLite: one statement run as an executemany, compiled once and cached
    (asyncpg and sqlite3 run it prepared, row by row in C). MySQL/MariaDB: one
    multi-row statement per batch, because the MySQL drivers' executemany batching
    cannot parse ON DUPLICATE KEY UPDATE. Elsewhere plain inserts: a taken SKU is an error.
    """
    dialect = connection.dialect.name
    before = await connection.execute(_CATEGORIES_OF_SKUS, {"skus": [row["sku"] for row in rows]})
    moved: Counter[str | None] = Counter()
    for existing in before:
        moved[existing.category] -= 1
    # A SKU twice in one batch is one product, in the category of its last row (the
    # upsert applies the rows in order).
    for category in {row["sku"]: row.get("category") for row in rows}.values():
        moved[category] += 1
    await _upsert_rows(connection, dialect, rows)
    await _count(connection, moved)


async def _upsert_rows(
    connection: AsyncConnection, dialect: str, rows: list[dict[str, Any]]
) -> None:
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
