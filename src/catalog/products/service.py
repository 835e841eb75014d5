"""Rules of the products domain. Flushes, never commits: the request's session does.
Public reads run on the request's Reader instead (no session, nothing to flush)."""

import math
import re
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalog.caching import entity_tags
from catalog.config import Settings
from catalog.db.errors import ConstraintKind
from catalog.db.retry import retry_transaction
from catalog.db.session import Reader
from catalog.errors import (
    NotFoundError,
    PreconditionFailedError,
    ValidationError,
    conflict_or_error,
)
from catalog.pagination import InvalidCursorError, decode_cursor, encode_cursor
from catalog.products import repository
from catalog.products.models import Product
from catalog.products.schemas import (
    NAME_KEY_LENGTH,
    PRICE,
    SKU,
    CategoryRead,
    CountMode,
    ProductCreate,
    ProductFilters,
    ProductPage,
    ProductQuery,
    ProductRead,
    ProductSort,
    ProductUpdate,
)
from catalog.schemas import as_utc

__all__ = [
    "COUNTED_UP_TO",
    "CategoryCache",
    "CountCache",
    "Merge",
    "ResultCount",
    "categories",
    "create",
    "delete",
    "etag",
    "find_by_sku",
    "get",
    "list_products",
    "merge",
    "read",
    "read_many",
    "result_count",
    "update",
]

# Exactly as etag() writes a version: strong comparison is character for character
# (RFC 9110 section 8.8.3.2), so "01" is not "1".
_STRONG_ETAG = re.compile(r'"(0|[1-9][0-9]{0,9})"')
# The version column is a 32-bit INTEGER: a larger tag names no version that can exist
# (and PostgreSQL refuses to even compare the column with it).
_MAX_VERSION = 2**31 - 1


def etag(product: Product | ProductRead) -> str:
    """The product's entity tag: its version, as a strong ETag."""
    return f'"{product.version}"'


def _if_match_versions(if_match: str | None) -> set[int] | None:
    """The versions an If-Match header accepts; None for no header or `*` (any).

    RFC 9110 strong comparison: weak tags (W/"1") and malformed ones match nothing.
    """
    tags = entity_tags(if_match) if if_match is not None else None
    if tags is None:
        return None
    versions = {
        int(match.group(1))
        for tag in tags
        if not tag.weak and (match := _STRONG_ETAG.fullmatch(tag.opaque))
    }
    return {version for version in versions if version <= _MAX_VERSION}


def _sku_conflict(error: IntegrityError, session: AsyncSession, sku: str | None) -> Exception:
    return conflict_or_error(
        error,
        session.get_bind().dialect.name,
        ConstraintKind.UNIQUE,
        f"A product with SKU {sku!r} already exists.",
    )


def _not_found(product_id: int) -> NotFoundError:
    return NotFoundError(f"There is no product with id {product_id}.")


def _shown(row: Row[Any] | None, product_id: int) -> ProductRead:
    if row is None:
        raise _not_found(product_id)
    return ProductRead.model_validate(row)


async def get(*, session: AsyncSession, product_id: int) -> ProductRead:
    """The product as the request's transaction sees it (writes); or NotFoundError."""
    return _shown(await repository.get(session, product_id), product_id)


async def read(*, reader: Reader, product_id: int) -> ProductRead:
    """The product, to show it (GET); or NotFoundError."""
    return _shown(await repository.read(reader, product_id), product_id)


async def find_by_sku(*, reader: Reader, text: str) -> ProductRead | None:
    """The product whose SKU is exactly `text` (as typed in a search box), if any. Only
    text of a SKU's form with a digit in it is looked up: SKUs carry numbers, and a
    search for words ("dinosaurs") costs no extra statement."""
    text = text.strip()
    if not SKU.fullmatch(text) or not any(character.isdigit() for character in text):
        return None
    row = await repository.read_by_sku(reader, text)
    return ProductRead.model_validate(row) if row is not None else None


async def read_many(
    *, source: Reader | AsyncSession, product_ids: Iterable[int]
) -> dict[int, ProductRead]:
    """The products with these ids that exist, by id (a cart's lines, an order's)."""
    rows = await repository.read_many(source, product_ids)
    return {row.id: ProductRead.model_validate(row) for row in rows}


# How many categories the pages list (the home page's chips, the filter's options).
_LISTED_CATEGORIES = 100


async def categories(*, reader: Reader, limit: int = _LISTED_CATEGORIES) -> list[CategoryRead]:
    """The categories products are in, in order (at most `limit`), each with how many
    products it has: to browse by, and the counts beside the category filters."""
    rows = await repository.categories(reader, limit=limit)
    return [CategoryRead.model_validate(row) for row in rows]


class CategoryCache:
    """The categories and their counts as the pages list them, read at most once per
    `ttl` seconds by each worker (CATALOG_CATEGORIES_TTL; 0 reads them every time).

    Every home and results page shows them, and they change only when a product is
    added, deleted or moved: one statement per page was a fifth of what a category
    page adds over its JSON route (docs/benchmarks.md, "The shop at a million
    products"). A count may be up to `ttl` seconds old, as facet counts often are."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._kept: tuple[float, list[CategoryRead]] | None = None

    async def get(self, reader: Reader) -> list[CategoryRead]:
        """The categories, from a read at most `ttl` seconds old."""
        now = time.monotonic()
        if self._kept is not None and now - self._kept[0] < self.ttl:
            return self._kept[1]
        listed = await categories(reader=reader)
        self._kept = (now, listed)
        return listed


# A results page counts the matches up to this many, and says "more than" beyond.
COUNTED_UP_TO = 1_000


@dataclass(frozen=True, slots=True)
class ResultCount:
    """How many products a search finds: exactly `number`, or more than `number` when
    `more` (counting all of a broad search at a million products means reading every
    match: a planner's estimate would be cheaper, but differs between backends and can
    be off tenfold)."""

    number: int
    more: bool = False


async def result_count(
    *, reader: Reader, filters: ProductFilters, categories: list[CategoryRead]
) -> ResultCount:
    """How many products match `filters`, as a results page says it. The whole catalog
    and one category are exact, and free: the categories table keeps their counts
    (`categories`, the kept list: complete unless it is as long as a list may be).
    Anything else is counted up to COUNTED_UP_TO, a scan no longer than that."""
    complete = len(categories) < _LISTED_CATEGORIES
    if filters == ProductFilters(category=filters.category):
        counts = {category.name: category.product_count for category in categories}
        if filters.category is None and complete:
            return ResultCount(sum(counts.values()))
        if filters.category in counts or (filters.category is not None and complete):
            return ResultCount(counts.get(filters.category, 0))
    found = await repository.count_matching_up_to(reader, filters, COUNTED_UP_TO + 1)
    return ResultCount(min(found, COUNTED_UP_TO), more=found > COUNTED_UP_TO)


class CountCache:
    """The counts of the searches a worker showed lately: each kept `ttl` seconds
    (CATALOG_RESULT_COUNTS_TTL; 0 counts every time), the `size` latest at most.

    A search's next pages and its other sorts have the same count; counting it again
    for each was what made a search page half as slow again as its JSON route
    (docs/benchmarks.md, "The shop at a million products")."""

    def __init__(self, ttl: float, size: int = 1_024) -> None:
        self.ttl = ttl
        self.size = size
        self._kept: OrderedDict[ProductFilters, tuple[float, ResultCount]] = OrderedDict()

    async def get(
        self, reader: Reader, filters: ProductFilters, categories: list[CategoryRead]
    ) -> ResultCount:
        """The count of `filters` (result_count), from a count at most `ttl` seconds old."""
        now = time.monotonic()
        kept = self._kept.get(filters)
        if kept is not None and now - kept[0] < self.ttl:
            self._kept.move_to_end(filters)
            return kept[1]
        counted = await result_count(reader=reader, filters=filters, categories=categories)
        if self.ttl > 0:
            self._kept[filters] = (now, counted)
            self._kept.move_to_end(filters)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return counted


def _sort_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


_MAX_ID = 2**63 - 1  # BIGINT


def _id(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= _MAX_ID:
        raise ValueError("not an id")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _name_key(value: Any) -> str:
    # A name's sort key (schemas.name_key): no control character (NUL above all:
    # PostgreSQL refuses it in text), no longer than the column.
    if not isinstance(value, str) or len(value) > NAME_KEY_LENGTH or _CONTROL.search(value):
        raise ValueError("not a name key")
    return value


def _price(value: Any) -> Decimal:
    if not isinstance(value, str) or not PRICE.fullmatch(value):
        raise ValueError("not a price")
    return Decimal(value)


def _moment(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("not a time")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("no offset")
    return as_utc(moment)


def _rank(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("not a rank")
    return float(value)


# What a cursor may hold as the sort value of each sort: exactly what _sort_value
# writes, checked as strictly as a request body (a cursor is signed, but a leaked key
# must not turn into a 500 or a query on values no column can hold).
_SORT_VALUES = {"id": _id, "name_key": _name_key, "price": _price, "created_at": _moment}


# A cursor's position is [sort value, id] of the last row sent (the next page starts
# after it), or [sort value, id, "before"] of the first row sent (the previous page
# ends before it).
_BEFORE = "before"


def _position(
    cursor: str, sort: ProductSort, scope: str, settings: Settings
) -> tuple[tuple[Any, int], bool]:
    position = decode_cursor(cursor, scope=scope, settings=settings)
    try:
        value, last_id, *direction = position
        if direction not in ([], [_BEFORE]):
            raise ValueError("not a direction")
        parse = _rank if sort is ProductSort.RELEVANCE else _SORT_VALUES[sort.column]
        return (parse(value), _id(last_id)), bool(direction)
    except (TypeError, ValueError, ArithmeticError):
        raise InvalidCursorError("The cursor is not one this service made.") from None


async def list_products(
    *,
    reader: Reader,
    settings: Settings,
    query: ProductQuery,
) -> ProductPage:
    """A page of the products `query` asks for, in its order, and the cursors of the
    pages after and before it. The API's `GET /products` and the shoppers' pages both
    come here."""
    filters, sort, limit, offset, cursor = (
        query.filters(),
        query.order,
        query.limit,
        query.offset,
        query.cursor,
    )
    count = query.count
    scope = filters.scope(sort)
    after, backward = _position(cursor, sort, scope, settings) if cursor else (None, False)
    if after is not None and offset:
        raise ValidationError(
            "Use either cursor or offset, not both.",
            errors=[
                {"loc": ["query", "offset"], "msg": "not with cursor", "type": "cursor_and_offset"}
            ],
        )
    # One row more than asked tells whether there is a page beyond, without a count.
    rows = await repository.list_page(
        reader,
        filters=filters,
        sort=sort,
        limit=limit + 1,
        offset=offset,
        after=after,
        backward=backward,
    )
    page, more = rows[:limit], len(rows) > limit
    if backward:
        # The rows before the cursor, nearest first: in order, they end where it was.
        page = page[::-1]
        has_next, has_previous = True, more
    else:
        has_next, has_previous = more, after is not None or offset > 0
    next_cursor = previous_cursor = None
    if page and has_next:
        last = page[-1]
        next_cursor = encode_cursor(
            [_sort_value(last.sort_key), last.id], scope=scope, settings=settings
        )
    if page and has_previous:
        first = page[0]
        previous_cursor = encode_cursor(
            [_sort_value(first.sort_key), first.id, _BEFORE], scope=scope, settings=settings
        )
    total: int | None = None
    if count is CountMode.EXACT:
        total = await repository.count_matching(reader, filters)
    elif count is CountMode.ESTIMATED:
        total = await repository.estimate_matching(reader, filters)
        if total is None:  # no planner estimate on this database: count
            total = await repository.count_matching(reader, filters)
    return ProductPage(
        items=[ProductRead.model_validate(row) for row in page],
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
        total=total,
        limit=limit,
        offset=offset,
    )


async def create(*, session: AsyncSession, data: ProductCreate) -> Product:
    """Add a product; a taken SKU is a ConflictError."""
    try:
        # InnoDB can deadlock two inserts of the same new SKU; run it again and the
        # loser sees the winner's row: a 409, not a 503.
        return await retry_transaction(
            session, lambda: repository.add(session, Product(**data.model_dump(), version=1))
        )
    except IntegrityError as error:
        raise _sku_conflict(error, session, data.sku) from error


async def _precondition_failed(session: AsyncSession, product_id: int) -> Exception:
    # The guarded statement matched no row: tell a missing product from a stale tag.
    product = await get(session=session, product_id=product_id)
    return PreconditionFailedError(
        f"Product {product_id} is at version {product.version} ({etag(product)}), "
        "which If-Match does not name; fetch it again and retry."
    )


async def update(
    *, session: AsyncSession, product_id: int, data: ProductUpdate, if_match: str | None
) -> ProductRead:
    """Apply a partial change; with If-Match, only to the version it names (else 412)."""
    values = data.model_dump(exclude_unset=True)
    versions = _if_match_versions(if_match)
    if not values:
        product = await get(session=session, product_id=product_id)
        if versions is not None and product.version not in versions:
            raise await _precondition_failed(session, product_id)
        return product
    try:
        updated = await repository.update_if_version(session, product_id, values, versions=versions)
    except IntegrityError as error:
        raise _sku_conflict(error, session, data.sku) from error
    if not updated:
        raise await _precondition_failed(session, product_id)
    return await get(session=session, product_id=product_id)


@dataclass(frozen=True)
class Merge:
    """An edit made from one version, merged with the version saved since."""

    # What to write: the fields only this editor changed (as this editor set them).
    changes: dict[str, Any] = field(default_factory=dict)
    # The fields only the other editor changed: kept as they are saved.
    kept: list[str] = field(default_factory=list)
    # The fields both changed, to different values: for a person to choose.
    conflicts: list[str] = field(default_factory=list)


def merge(*, opened: ProductUpdate | None, mine: ProductUpdate, saved: ProductRead) -> Merge:
    """Merge an edit three ways: `mine` (every field, as the editor left it) was made
    from `opened` (the product as the editor's form showed it), and the product is now
    `saved`. Only a field that both changed, differently, is a conflict; without
    `opened`, every field that differs is one. Compared as values (19.9 is 19.90)."""
    result = Merge()
    for name in ProductUpdate.model_fields:
        ours, theirs = getattr(mine, name), getattr(saved, name)
        base_known = opened is not None
        we_changed = not base_known or ours != getattr(opened, name)
        they_changed = not base_known or theirs != getattr(opened, name)
        if not we_changed:
            if they_changed:
                result.kept.append(name)
        elif ours == theirs:
            continue  # the same change on both sides: nothing to write
        elif they_changed:
            result.conflicts.append(name)
        else:
            result.changes[name] = ours
    return result


async def delete(*, session: AsyncSession, product_id: int, if_match: str | None) -> None:
    """Delete a product; with If-Match, only at the version it names (else 412)."""
    versions = _if_match_versions(if_match)
    try:
        deleted = await repository.delete_if_version(session, product_id, versions=versions)
    except IntegrityError as error:
        raise conflict_or_error(
            error,
            session.get_bind().dialect.name,
            ConstraintKind.FOREIGN_KEY,
            f"Product {product_id} has been ordered, so it cannot be deleted; "
            "set its stock to 0 instead.",
        ) from error
    if not deleted:
        raise await _precondition_failed(session, product_id)
