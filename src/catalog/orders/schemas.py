"""What the orders API accepts and returns."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from catalog.orders.models import OrderStatus
from catalog.schemas import WHOLE_NUMBER

__all__ = [
    "MAX_LINES",
    "MAX_PRODUCT_REF",
    "MAX_QUANTITY",
    "OrderCreate",
    "OrderLineIn",
    "OrderLineRead",
    "OrderPage",
    "OrderRead",
]

# Within I-JSON's exact integer range (RFC 7493): JSON numbers above 2**53 lose digits
# in most clients.
MAX_PRODUCT_REF = 2**53 - 1
ProductRef = Annotated[int, Field(ge=1, le=MAX_PRODUCT_REF), WHOLE_NUMBER]
MAX_QUANTITY = 10_000
MAX_LINES = 100


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: ProductRef
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY), WHOLE_NUMBER]


class OrderCreate(BaseModel):
    """The products and quantities to buy; prices come from the catalog, never from here."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"items": [{"product_id": 42, "quantity": 2}, {"product_id": 7, "quantity": 1}]}
            ]
        },
    )

    items: Annotated[list[OrderLineIn], Field(min_length=1, max_length=MAX_LINES)]

    @model_validator(mode="after")
    def _one_line_per_product(self) -> Self:
        seen: set[int] = set()
        for line in self.items:
            if line.product_id in seen:
                raise ValueError(f"product {line.product_id} appears on more than one line")
            seen.add(line.product_id)
        return self


class OrderLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    product_id: int
    quantity: int
    unit_price: Decimal


_EXAMPLE_READ: JsonDict = {
    "id": 7,
    "status": "placed",
    "items": [
        {"product_id": 7, "quantity": 1, "unit_price": "5.00"},
        {"product_id": 42, "quantity": 2, "unit_price": "19.99"},
    ],
    "total": "44.98",
    "created_at": "2025-02-03T10:15:00Z",
}


class OrderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_EXAMPLE_READ]})

    id: int
    status: OrderStatus
    items: list[OrderLineRead] = Field(validation_alias="lines")
    total: Decimal
    created_at: datetime


class OrderPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [_EXAMPLE_READ], "total": 1, "limit": 20, "offset": 0}]
        }
    )

    items: list[OrderRead]
    total: int
    limit: int
    offset: int
