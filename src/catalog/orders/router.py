"""HTTP routes of the orders API."""

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response

from catalog.db.session import SessionDep
from catalog.errors import problem_responses
from catalog.links import link_to
from catalog.orders import service as order_service
from catalog.orders.schemas import OrderCreate, OrderPage, OrderRead
from catalog.users.dependencies import CurrentUser

__all__ = ["router"]

router = APIRouter(prefix="/orders", tags=["orders"])

OrderId = Annotated[int, Path(ge=1, le=2**63 - 1)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="Send the same key when retrying: the first order is returned, "
        "no second one is placed",
    ),
]


@router.post(
    "",
    status_code=201,
    responses=problem_responses(401, 404, 409, 413, 422),
)
async def place_order(
    data: OrderCreate,
    user: CurrentUser,
    session: SessionDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> OrderRead:
    """Buy: every line's stock is taken and the order written in one transaction, or
    nothing changes (409 names the products short of stock)."""
    order = await order_service.place(
        session=session, user_id=user.id, data=data, idempotency_key=idempotency_key
    )
    response.headers["Location"] = link_to(request, "get_order", order_id=order.id)
    return OrderRead.model_validate(order)


@router.get("", responses=problem_responses(401, 422))
async def list_orders(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> OrderPage:
    """Your orders, newest first."""
    return await order_service.list_orders(
        session=session, user_id=user.id, limit=limit, offset=offset
    )


@router.get("/{order_id}", responses=problem_responses(401, 404, 422))
async def get_order(order_id: OrderId, user: CurrentUser, session: SessionDep) -> OrderRead:
    """One of your orders; anyone else's is 404."""
    order = await order_service.get(session=session, user_id=user.id, order_id=order_id)
    return OrderRead.model_validate(order)


@router.post("/{order_id}/cancel", responses=problem_responses(401, 404, 409, 422))
async def cancel_order(order_id: OrderId, user: CurrentUser, session: SessionDep) -> OrderRead:
    """Cancel a placed order; its stock goes back in the same transaction. 409 if it
    is already cancelled."""
    order = await order_service.cancel(session=session, user_id=user.id, order_id=order_id)
    return OrderRead.model_validate(order)
