"""HTTP routes of the products API."""

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from catalog.config import SettingsDep
from catalog.db.session import SessionDep, SessionFactoryDep
from catalog.errors import problem_responses
from catalog.products import export as product_export
from catalog.products import service as product_service
from catalog.products.schemas import ProductCreate, ProductPage, ProductRead, ProductUpdate
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


@router.get("", responses=problem_responses(422))
async def list_products(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> ProductPage:
    """Products ordered by id, a page at a time."""
    return await product_service.list_products(session=session, limit=limit, offset=offset)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every product, one per line (NDJSON) or row (CSV), by id",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        },
        **problem_responses(422, 503),
    },
)
async def export_products(
    sessionmaker: SessionFactoryDep,
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
    response.headers["Location"] = str(request.url_for("get_product", product_id=product.id))
    response.headers["ETag"] = product_service.etag(product)
    return ProductRead.model_validate(product)


@router.get("/{product_id}", responses=problem_responses(404, 422))
async def get_product(
    product_id: ProductId, session: SessionDep, response: Response
) -> ProductRead:
    """One product, with its version as `ETag`."""
    product = await product_service.get(session=session, product_id=product_id)
    response.headers["ETag"] = product_service.etag(product)
    return ProductRead.model_validate(product)


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
    return ProductRead.model_validate(product)


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
