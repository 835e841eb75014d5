"""HTTP routes of the products API."""

from collections.abc import AsyncIterator, Callable
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from catalog.caching import none_match, not_modified
from catalog.config import SettingsDep
from catalog.consistency import ReplicaReaderDep, ReplicaSessionFactoryDep
from catalog.db.session import SessionDep
from catalog.jsonbody import JSONRoute
from catalog.links import link_to, link_to_this
from catalog.problems import invalid, problem_examples
from catalog.products import export as product_export
from catalog.products import service as product_service
from catalog.products.schemas import (
    ProductCreate,
    ProductPage,
    ProductQuery,
    ProductRead,
    ProductUpdate,
)
from catalog.users.dependencies import AdminUser

__all__ = ["router"]

router = APIRouter(prefix="/products", tags=["products"], route_class=JSONRoute)

# Ids are BIGINT on every backend: a larger number is a 422 here, not an overflow there.
ProductId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The product's id", examples=[42])]
IfMatch = Annotated[
    str | None,
    Header(
        max_length=1024,
        description='Apply only if the product is still at this ETag (e.g. `"3"`); 412 if not',
        examples=['"3"'],
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        max_length=1024,
        description='The ETags of the copies you hold (e.g. `"3"`, `W/"3"`, a list, or `*`): '
        "304 without a body if the product is still at one of them",
        examples=['"3"'],
    ),
]


_PAGING = ("cursor", "offset")


# What a bad product id is answered (the same on every route that takes one).
_BAD_PRODUCT_ID = invalid(
    ("path", "product_id"), "Input should be greater than or equal to 1", "greater_than_equal"
)


@router.get(
    "",
    responses=problem_examples(
        "invalid-cursor",
        "invalid-consistency-token",
        "unprocessable",
        "database-unavailable",
        validation_error=invalid(
            ("query", "limit"), "Input should be less than or equal to 200", "less_than_equal"
        ),
    ),
)
async def list_products(
    reader: ReplicaReaderDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    query: Annotated[ProductQuery, Query()],
) -> ProductPage:
    """Products matching every filter given, in `sort` order (ties by id), a page at a
    time. Page with `cursor` (cheap at any depth); `offset` is for small catalogs."""
    page = await product_service.list_products(reader=reader, settings=settings, query=query)
    links = [
        (relation, cursor)
        for relation, cursor in (("next", page.next_cursor), ("prev", page.previous_cursor))
        if cursor is not None
    ]
    if links:
        # This request's query with the cursor in place of cursor and offset, built in
        # one go (cheaper than URL.remove_query_params().include_query_params()).
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in _PAGING]
        response.headers["Link"] = ", ".join(
            f'<{link_to_this(request, urlencode([*kept, ("cursor", cursor)]))}>; rel="{relation}"'
            for relation, cursor in links
        )
    response.headers["Cache-Control"] = settings.public_cache_control
    return page


async def _given_back_after(
    chunks: AsyncIterator[bytes], give_back: Callable[[], None]
) -> AsyncIterator[bytes]:
    # The slot is the export's until its last chunk is sent, or the client goes away
    # (Starlette then stops the iteration, and this finally runs).
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        give_back()


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every product, one per line (NDJSON) or row (CSV), by id",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        },
        **problem_examples(
            "invalid-consistency-token",
            "too-many-requests",
            "database-unavailable",
            validation_error=invalid(
                ("query", "format"), "Input should be 'ndjson' or 'csv'", "enum"
            ),
        ),
    },
)
async def export_products(
    request: Request,
    sessionmaker: ReplicaSessionFactoryDep,
    settings: SettingsDep,
    export_format: Annotated[
        product_export.ExportFormat,
        Query(alias="format", description="NDJSON (one object a line) or CSV", examples=["csv"]),
    ] = product_export.ExportFormat.NDJSON,
) -> StreamingResponse:
    """Stream every product. No connection is held while the client reads. A worker
    streams CATALOG_MAX_EXPORTS at once (503 beyond), CATALOG_MAX_EXPORTS_PER_CLIENT to
    one client address (429 beyond)."""
    give_back = request.app.state.export_slots.take(request)
    try:
        size = settings.export_chunk_size
        first = await product_export.first_chunk(sessionmaker, size)
    except BaseException:
        give_back()
        raise
    extension = "ndjson" if export_format is product_export.ExportFormat.NDJSON else "csv"
    return StreamingResponse(
        _given_back_after(
            product_export.export_chunks(sessionmaker, export_format, first, size), give_back
        ),
        media_type=export_format.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="products.{extension}"',
            "Cache-Control": settings.public_cache_control,
        },
    )


@router.post(
    "",
    status_code=201,
    responses={
        201: {
            "headers": {
                "Location": {"schema": {"type": "string"}},
                "ETag": {"schema": {"type": "string"}},
            }
        },
        **problem_examples(
            "unauthorized",
            "forbidden",
            "payload-too-large",
            "validation-error",
            "database-unavailable",
            conflict="A product with SKU 'BK-0001' already exists.",
        ),
    },
)
async def create_product(
    data: ProductCreate,
    _admin: AdminUser,
    session: SessionDep,
    request: Request,
    response: Response,
) -> ProductRead:
    """Add a product; 409 if its SKU is taken."""
    product = await product_service.create(session=session, data=data)
    response.headers["Location"] = link_to(request, "get_product", product_id=product.id)
    response.headers["ETag"] = product_service.etag(product)
    return ProductRead.model_validate(product)


@router.get(
    "/{product_id}",
    # The 304 is a bare Response; the schema and the 200's serialization are ProductRead.
    response_model=ProductRead,
    responses={
        304: {"description": "Not Modified: the product is still at a tag If-None-Match names"},
        **problem_examples(
            "invalid-consistency-token",
            "not-found",
            "database-unavailable",
            validation_error=_BAD_PRODUCT_ID,
        ),
    },
)
async def get_product(
    product_id: ProductId,
    reader: ReplicaReaderDep,
    settings: SettingsDep,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> ProductRead | Response:
    """One product, with its version as `ETag`; 304 without a body when `If-None-Match`
    names its current version."""
    # Read even when the client holds a copy: only the database knows whether the
    # version moved since. A 304 saves the serialization and the bytes, not the read.
    product = await product_service.read(reader=reader, product_id=product_id)
    tag = product_service.etag(product)
    response.headers["ETag"] = tag
    response.headers["Cache-Control"] = settings.public_cache_control
    if not none_match(if_none_match, tag):
        return not_modified(response)
    return product


@router.patch(
    "/{product_id}",
    responses=problem_examples(
        "unauthorized",
        "forbidden",
        "not-found",
        "precondition-failed",
        "payload-too-large",
        "validation-error",
        "database-unavailable",
        conflict="A product with SKU 'BK-0001' already exists.",
    ),
)
async def update_product(
    product_id: ProductId,
    data: ProductUpdate,
    _admin: AdminUser,
    session: SessionDep,
    response: Response,
    if_match: IfMatch = None,
) -> ProductRead:
    """Change some fields; with `If-Match`, only if nobody changed the product since."""
    product = await product_service.update(
        session=session, product_id=product_id, data=data, if_match=if_match
    )
    response.headers["ETag"] = product_service.etag(product)
    return product


@router.delete(
    "/{product_id}",
    status_code=204,
    response_class=Response,
    responses=problem_examples(
        "unauthorized",
        "forbidden",
        "not-found",
        "precondition-failed",
        "database-unavailable",
        conflict="Product 42 has been ordered, so it cannot be deleted; set its stock to 0 "
        "instead.",
        validation_error=_BAD_PRODUCT_ID,
    ),
)
async def delete_product(
    product_id: ProductId, _admin: AdminUser, session: SessionDep, if_match: IfMatch = None
) -> None:
    """Remove a product."""
    await product_service.delete(session=session, product_id=product_id, if_match=if_match)
