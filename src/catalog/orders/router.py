"""HTTP routes of the orders API."""

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response

from catalog.db.session import SessionDep
from catalog.jsonbody import JSONRoute
from catalog.links import link_to
from catalog.orders import service as order_service
from catalog.orders.schemas import OrderCreate, OrderPage, OrderRead
from catalog.problems import invalid, problem_examples
from catalog.users.dependencies import CurrentUser

__all__ = ["router"]

router = APIRouter(prefix="/orders", tags=["orders"], route_class=JSONRoute)

OrderId = Annotated[
    int, Path(ge=1, le=2**63 - 1, description="The order's id (`id` in the order)", examples=[7])
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="Send the same key when retrying: the first order is returned, "
        "no second one is placed",
        examples=["3f1c2a9e-5b7d-4e0f-9a6b-2d8c7e1f0a43"],
    ),
]


@router.post(
    "",
    status_code=201,
    responses=problem_examples(
        "unauthorized",
        "payload-too-large",
        "database-unavailable",
        not_found={"detail": "There is no product with id 42.", "unknown": [42]},
        conflict={
            "detail": "Not enough stock for some products; nothing was ordered.",
            "short_of_stock": [42],
        },
        validation_error=invalid(
            ("body", "items", 0, "quantity"),
            "Input should be less than or equal to 10000",
            "less_than_equal",
        ),
        unprocessable={
            "detail": "This Idempotency-Key was used for a different order; use a new key "
            "for a new order.",
            "errors": [
                {
                    "loc": ["header", "Idempotency-Key"],
                    "msg": "was used for a different order; use a new key for a new order",
                    "type": "key_reused",
                }
            ],
        },
    ),
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


_BAD_ORDER_ID = invalid(
    ("path", "order_id"), "Input should be greater than or equal to 1", "greater_than_equal"
)


@router.get(
    "",
    responses=problem_examples(
        "unauthorized",
        "database-unavailable",
        validation_error=invalid(
            ("query", "limit"), "Input should be less than or equal to 200", "less_than_equal"
        ),
    ),
)
async def list_orders(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[
        int, Query(ge=1, le=200, description="Orders on this page", examples=[20])
    ] = 20,
    offset: Annotated[
        int, Query(ge=0, le=10_000, description="Orders to skip, newest first", examples=[0])
    ] = 0,
) -> OrderPage:
    """Your orders, newest first."""
    return await order_service.list_orders(
        session=session, user_id=user.id, limit=limit, offset=offset
    )


@router.get(
    "/{order_id}",
    responses=problem_examples(
        "unauthorized",
        "database-unavailable",
        not_found="You have no order with id 7.",
        validation_error=_BAD_ORDER_ID,
    ),
)
async def get_order(order_id: OrderId, user: CurrentUser, session: SessionDep) -> OrderRead:
    """One of your orders; anyone else's is 404."""
    order = await order_service.get(session=session, user_id=user.id, order_id=order_id)
    return OrderRead.model_validate(order)


@router.post(
    "/{order_id}/cancel",
    responses=problem_examples(
        "unauthorized",
        "database-unavailable",
        not_found="You have no order with id 7.",
        conflict="Order 7 is already cancelled.",
        validation_error=_BAD_ORDER_ID,
    ),
)
async def cancel_order(order_id: OrderId, user: CurrentUser, session: SessionDep) -> OrderRead:
    """Cancel a placed order; its stock goes back in the same transaction. 409 if it
    is already cancelled."""
    order = await order_service.cancel(session=session, user_id=user.id, order_id=order_id)
    return OrderRead.model_validate(order)
