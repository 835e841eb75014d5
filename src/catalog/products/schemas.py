"""What the products API accepts and returns."""

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = ["ProductCreate", "ProductPage", "ProductRead", "ProductUpdate"]

# No control characters in one-line text (NUL above all: PostgreSQL cannot store it);
# descriptions may also hold tabs and line breaks.
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
_MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"

Sku = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
    Field(description="Stock-keeping unit: letters, digits, `.`, `_` and `-`; unique", examples=["BK-0001"]),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=_ONE_LINE),
    Field(examples=["A field guide to dinosaurs"]),
]
Description = Annotated[str, StringConstraints(max_length=5000, pattern=_MULTI_LINE)]
Category = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=_ONE_LINE),
    Field(examples=["books"]),
]
# Money is exact: sent and returned as a decimal string ("19.99"); a JSON number is
# accepted on input. The bounds are those of the NUMERIC(12, 2) column.
Price = Annotated[
    Decimal,
    Field(
        ge=0,
        le=Decimal("9999999999.99"),
        max_digits=12,
        decimal_places=2,
        allow_inf_nan=False,
        examples=["19.99"],
    ),
]
# strict: a JSON integer only (no "5", 5.0 or true); bounded by a 32-bit INTEGER column.
Stock = Annotated[int, Field(ge=0, le=2_147_483_647, strict=True)]


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: Name
    description: Description = ""
    price: Price
    stock: Stock = 0
    category: Category | None = None


class ProductUpdate(BaseModel):
    """A partial change: only the fields sent are changed; `category` may be set to null."""

    model_config = ConfigDict(extra="forbid")

    sku: Sku | None = None
    name: Name | None = None
    description: Description | None = None
    price: Price | None = None
    stock: Stock | None = None
    category: Category | None = None

    @model_validator(mode="after")
    def _required_fields_are_not_null(self) -> Self:
        for field in ("sku", "name", "description", "price", "stock"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class ProductRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str
    name: str
    description: str
    price: Decimal
    stock: int
    category: str | None
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Bumped on every change; the ETag carries it")


class ProductPage(BaseModel):
    """One page of products; later versions add fields, never remove them."""

    items: list[ProductRead]
    total: int = Field(description="How many products there are in all")
    limit: int
    offset: int
