"""Rules of the products domain. Flushes, never commits: the request's session does."""

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from catalog.db.errors import ConstraintKind, constraint_violation
from catalog.errors import ConflictError, NotFoundError, PreconditionFailedError
from catalog.products import repository
from catalog.products.models import Product
from catalog.products.schemas import ProductCreate, ProductPage, ProductRead, ProductUpdate

__all__ = ["create", "delete", "etag", "get", "list_products", "update"]


def etag(product: Product) -> str:
    """The product's entity tag: its version, as a strong ETag."""
    return f'"{product.version}"'


def _check_if_match(product: Product, if_match: str | None) -> None:
    """RFC 9110 If-Match with strong comparison: `*` or one of the listed tags."""
    if if_match is None:
        return
    tags = {tag.strip() for tag in if_match.split(",")}
    if "*" not in tags and etag(product) not in tags:
        raise PreconditionFailedError(
            f"Product {product.id} is at version {product.version} ({etag(product)}), "
            f"which If-Match does not name; fetch it again and retry."
        )


def _sku_conflict(error: IntegrityError, session: AsyncSession, sku: str) -> Exception:
    violation = constraint_violation(error, session.get_bind().dialect.name)
    if violation is not None and violation.kind is ConstraintKind.UNIQUE:
        return ConflictError(f"A product with SKU {sku!r} already exists.")
    return error


async def get(*, session: AsyncSession, product_id: int) -> Product:
    """The product, or NotFoundError."""
    product = await repository.get(session, product_id)
    if product is None:
        raise NotFoundError(f"There is no product with id {product_id}.")
    return product


async def list_products(*, session: AsyncSession, limit: int, offset: int) -> ProductPage:
    """A page of products ordered by id, with the total count."""
    items = await repository.list_page(session, limit=limit, offset=offset)
    total = await repository.count(session)
    return ProductPage(
        items=[ProductRead.model_validate(item) for item in items],
        total=total,
        limit=limit,
        offset=offset,
    )


async def create(*, session: AsyncSession, data: ProductCreate) -> Product:
    """Add a product; a taken SKU is a ConflictError."""
    try:
        return await repository.add(session, Product(**data.model_dump(), version=1))
    except IntegrityError as error:
        raise _sku_conflict(error, session, data.sku) from error


async def update(
    *, session: AsyncSession, product_id: int, data: ProductUpdate, if_match: str | None
) -> Product:
    """Apply a partial change, guarded by the version read (and If-Match when given)."""
    product = await get(session=session, product_id=product_id)
    _check_if_match(product, if_match)
    for field, value in data.model_dump(exclude_unset=True).items():
        setattr(product, field, value)
    try:
        await repository.flush(session)
    except StaleDataError as error:
        raise _concurrent_change(product_id, if_match) from error
    except IntegrityError as error:
        raise _sku_conflict(error, session, str(data.sku)) from error
    return product


async def delete(*, session: AsyncSession, product_id: int, if_match: str | None) -> None:
    """Delete a product, guarded like `update`."""
    product = await get(session=session, product_id=product_id)
    _check_if_match(product, if_match)
    try:
        await repository.delete(session, product)
    except StaleDataError as error:
        raise _concurrent_change(product_id, if_match) from error


def _concurrent_change(product_id: int, if_match: str | None) -> Exception:
    detail = f"Product {product_id} was changed by another request meanwhile; fetch it and retry."
    if if_match is not None:
        return PreconditionFailedError(detail)
    return ConflictError(detail)
