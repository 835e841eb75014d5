"""HTTP routes of the products API."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from catalog.config import SettingsDep
from catalog.consistency import ReplicaReaderDep, ReplicaSessionFactoryDep
from catalog.db.session import SessionDep
from catalog.errors import problem_responses
from catalog.links import link_to, link_to_this
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

router = APIRouter(prefix="/products", tags=["products"])

# Ids are BIGINT on every backend: a larger number is a 422 here, not an overflow there.
ProductId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The product's id")]
IfMatch = Annotated[
    str | None,
    Header(
        max_length=1024,
        description='Apply only if the product is still at this ETag (e.g. `"3"`); 412 if not',
    ),
]


_PAGING = ("cursor", "offset")


@router.get("", responses=problem_responses(400, 422))
async def list_products(
    reader: ReplicaReaderDep,
    settings: SettingsDep,
    request: Request,
    response: Response,
    query: Annotated[ProductQuery, Query()],
) -> ProductPage:
    """Products matching every filter given, in `sort` order (ties by id), a page at a
    time. Page with `cursor` (cheap at any depth); `offset` is for small catalogs."""
    page = await product_service.list_products(
        reader=reader,
        settings=settings,
        filters=query.filters(),
        sort=query.order,
        limit=query.limit,
        offset=query.offset,
        cursor=query.cursor,
        count=query.count,
    )
    if page.next_cursor is not None:
        # This request's query with the cursor in place of cursor and offset, built in
        # one go (cheaper than URL.remove_query_params().include_query_params()).
        items = [(k, v) for k, v in request.query_params.multi_items() if k not in _PAGING]
        items.append(("cursor", page.next_cursor))
        response.headers["Link"] = f'<{link_to_this(request, urlencode(items))}>; rel="next"'
    return page


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every product, one per line (NDJSON) or row (CSV), by id",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        },
        **problem_responses(400, 422, 503),
    },
)
async def export_products(
    sessionmaker: ReplicaSessionFactoryDep,
    settings: SettingsDep,
    export_format: Annotated[
        product_export.ExportFormat, Query(alias="format")
    ] = product_export.ExportFormat.NDJSON,
) -> StreamingResponse:
    """Stream every product. No connection is held while the client reads."""
    size = settings.export_chunk_size
    first = await product_export.first_chunk(sessionmaker, size)
    extension = "ndjson" if export_format is product_export.ExportFormat.NDJSON else "csv"
    return StreamingResponse(
        product_export.export_chunks(sessionmaker, export_format, first, size),
        media_type=export_format.media_type,
        headers={"Content-Disposition": f'attachment; filename="products.{extension}"'},
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
        **problem_responses(401, 403, 409, 413, 422),
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


@router.get("/{product_id}", responses=problem_responses(400, 404, 422))
async def get_product(
    product_id: ProductId, reader: ReplicaReaderDep, response: Response
) -> ProductRead:
    """One product, with its version as `ETag`."""
    product = await product_service.read(reader=reader, product_id=product_id)
    response.headers["ETag"] = product_service.etag(product)
    return product


@router.patch("/{product_id}", responses=problem_responses(401, 403, 404, 409, 412, 413, 422))
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
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def delete_product(
    product_id: ProductId, _admin: AdminUser, session: SessionDep, if_match: IfMatch = None
) -> None:
    """Remove a product."""
    await product_service.delete(session=session, product_id=product_id, if_match=if_match)
