"""What the orders API accepts and returns."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from catalog.orders.models import OrderStatus
from catalog.schemas import WHOLE_NUMBER

__all__ = ["OrderCreate", "OrderLineIn", "OrderLineRead", "OrderPage", "OrderRead"]

# Within I-JSON's exact integer range (RFC 7493): JSON numbers above 2**53 lose digits
# in most clients.
ProductRef = Annotated[int, Field(ge=1, le=2**53 - 1), WHOLE_NUMBER]


class OrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: ProductRef
    quantity: Annotated[int, Field(ge=1, le=10_000), WHOLE_NUMBER]


class OrderCreate(BaseModel):
    """The products and quantities to buy; prices come from the catalog, never from here."""

    model_config = ConfigDict(extra="forbid")

    items: Annotated[list[OrderLineIn], Field(min_length=1, max_length=100)]

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


class OrderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: OrderStatus
    items: list[OrderLineRead] = Field(validation_alias="lines")
    total: Decimal
    created_at: datetime


class OrderPage(BaseModel):
    items: list[OrderRead]
    total: int
    limit: int
    offset: int
