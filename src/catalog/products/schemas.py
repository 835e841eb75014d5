"""What the products API accepts and returns."""

import enum
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from catalog.products.terms import finds_something
from catalog.schemas import NO_CONTROL_CHARACTERS, WHOLE_NUMBER, JSONNumber, UTCTimestamp

__all__ = [
    "CATEGORY",
    "IN_WORDS",
    "MAX_STOCK",
    "NAME_KEY_LENGTH",
    "OFFSET_CAP",
    "PRICE",
    "SKU",
    "CategoryRead",
    "CountMode",
    "ProductCreate",
    "ProductFilters",
    "ProductPage",
    "ProductQuery",
    "ProductRead",
    "ProductSort",
    "ProductUpdate",
    "name_key",
    "normal_category",
    "normal_text",
]

# No control characters in one-line text (NUL above all: PostgreSQL cannot store it),
# and no leading space; descriptions may also hold tabs and line breaks.
_ONE_LINE = r"^[^ \x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
_MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# A category is compared exactly, and MariaDB's binary collation pads trailing spaces
# ("books" = "books "): none at either end, so every database gives the same answer.
CATEGORY = r"^[^ \x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^ \x00-\x1f\x7f])?$"


def normal_text(value: object) -> object:
    """Text in Unicode's composed form (NFC), the form every database's text search and
    comparisons expect: "crème" typed as e + combining grave finds the stored "crème";
    and line breaks as LF, whether they came from a browser's form (CRLF) or not.
    Anything else is left for the field's own validation to refuse."""
    if not isinstance(value, str):
        return value
    return unicodedata.normalize("NFC", value.replace("\r\n", "\n"))


_SPACES = re.compile(" +")


def normal_category(value: object) -> object:
    """A category spelled one way, wherever it comes from (API, form, import, filter):
    NFKC (look-alike compatibility characters and decomposed accents are one
    category), lower case, spaces trimmed and collapsed, so that "Kitchen", "kitchen "
    and "kitchen" in full-width letters are one. Accents stay: "café" is not "cafe".
    Tabs and other control characters are not spaces here: the pattern refuses them."""
    if not isinstance(value, str):
        return value
    folded = unicodedata.normalize("NFKC", value).lower()
    return unicodedata.normalize("NFC", _SPACES.sub(" ", folded).strip(" "))


# Long enough for any name's key: case folding and NFKC lengthen a few characters
# ("ß" is "ss"); a longer key is cut, and the id orders what the cut leaves equal.
NAME_KEY_LENGTH = 400


def name_key(name: str) -> str:
    """What products sort by when sorted by name, the same on every database: the name
    in NFKC, case-folded (NFKC again after the folding, as Unicode's NFKC_Casefold), with
    no trailing spaces (MariaDB's binary collation ignores them in comparisons), compared
    code point by code point (db.base.CodePointString). "apple", "Apple" and "APPLE" in
    full-width letters sort together; "Zebra" after "apple", unlike a byte order's."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return folded.rstrip(" ")[:NAME_KEY_LENGTH]


SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
Sku = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=f"^{SKU.pattern}$"),
    Field(
        description="Stock-keeping unit: letters, digits, `.`, `_` and `-`; unique",
        examples=["BK-0001"],
    ),
]
# Each normaliser after the constraints: it still runs first (it wraps them), and the
# JSON Schema keeps their pattern (before them, pydantic leaves the pattern out).
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=_ONE_LINE),
    BeforeValidator(normal_text),
    Field(examples=["A field guide to dinosaurs"]),
]
Description = Annotated[
    str, StringConstraints(max_length=5000, pattern=_MULTI_LINE), BeforeValidator(normal_text)
]
Category = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100, pattern=CATEGORY),
    BeforeValidator(normal_category),
    Field(examples=["books"]),
]
# What each product field's form is, in words, for the pages and the import's report
# (catalog.schemas.in_words); the API's 422s keep pydantic's own messages.
_A_PRICE = "is not a price: write it like 19.99, with at most two decimals"
IN_WORDS = {
    "sku": "may hold only letters, digits, “.”, “_” and “-”, and starts with a letter or digit",
    "name": "cannot hold a line break or another control character, nor begin with a space",
    "description": "cannot hold a control character (line breaks and tabs are fine)",
    "category": "cannot hold a line break, a tab or another control character",
    "q": "cannot hold a line break, a tab or another control character",
    "price": _A_PRICE,
    "price_min": _A_PRICE,
    "price_max": _A_PRICE,
}
# Money is exact: sent and returned as a decimal string ("19.99"), never as a JSON
# number, which most clients parse as a float. At most 10 + 2 digits: NUMERIC(12, 2).
_PRICE_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
PRICE = re.compile(_PRICE_PATTERN)
_CENT = Decimal("0.01")


def _decimal_string(value: object) -> object:
    if isinstance(value, Decimal) and not isinstance(value, JSONNumber):
        return value  # from Python code, not from JSON
    if not isinstance(value, str) or not PRICE.fullmatch(value):
        raise ValueError(
            'must be a string with up to 10 digits and 2 decimals, such as "19.99" '
            "(not a JSON number, which clients round as floats)"
        )
    # To the cent, as it is stored: "7.5" is answered "7.50" at once, not only when read
    # back (one ETag, one body).
    return Decimal(value).quantize(_CENT)


Price = Annotated[
    Decimal,
    BeforeValidator(_decimal_string),
    Field(ge=0, max_digits=12, decimal_places=2),
    WithJsonSchema(
        {"type": "string", "pattern": _PRICE_PATTERN, "examples": ["19.99"]}, mode="validation"
    ),
]


# Bounded by a 32-bit INTEGER column.
MAX_STOCK = 2_147_483_647
Stock = Annotated[int, Field(ge=0, le=MAX_STOCK), WHOLE_NUMBER]


# One product as the examples of the schema show it (requests and responses).
_EXAMPLE: JsonDict = {
    "sku": "BK-0001",
    "name": "A field guide to dinosaurs",
    "description": "Three hundred species, illustrated.",
    "price": "19.99",
    "stock": 12,
    "category": "books",
}
_EXAMPLE_READ: JsonDict = {
    "id": 42,
    **_EXAMPLE,
    "created_at": "2025-01-15T09:30:00Z",
    "updated_at": "2025-02-01T17:05:12Z",
    "version": 3,
}


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    sku: Sku
    name: Name
    description: Description = ""
    price: Price
    stock: Stock = 0
    category: Category | None = None


def _null_not_offered(schema: dict[str, Any]) -> None:
    options = [option for option in schema.pop("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    schema.pop("default", None)


# None is only the "not sent" default of a field that cannot be null: the schema does
# not offer null. Written as `X | None` (not a union with a hidden None), so that a bad
# value's error names the field alone, not pydantic's union members.
_NOT_NULL = Field(json_schema_extra=_null_not_offered)


class ProductUpdate(BaseModel):
    """A partial change: only the fields sent are changed; only `category` may be null."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"price": "17.50", "stock": 40}]}
    )

    # None is only the "not sent" default (the service applies the fields that were
    # sent); an explicit null is refused, and the schema does not offer it.
    sku: Annotated[Sku | None, _NOT_NULL] = None
    name: Annotated[Name | None, _NOT_NULL] = None
    description: Annotated[Description | None, _NOT_NULL] = None
    price: Annotated[Price | None, _NOT_NULL] = None
    stock: Annotated[Stock | None, _NOT_NULL] = None
    category: Category | None = None

    @model_validator(mode="after")
    def _required_fields_are_not_null(self) -> Self:
        for field in ("sku", "name", "description", "price", "stock"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self


class CategoryRead(BaseModel):
    """A category and how many products it has now."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    product_count: int


class ProductRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_EXAMPLE_READ]})

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


class ProductSort(enum.StrEnum):
    """A sort key; `-` for descending. Ties are broken by id, so the order is total."""

    ID = "id"
    ID_DESC = "-id"
    NAME = "name"
    NAME_DESC = "-name"
    PRICE = "price"
    PRICE_DESC = "-price"
    CREATED_AT = "created_at"
    CREATED_AT_DESC = "-created_at"
    # With q only, and its default: most relevant first.
    RELEVANCE = "relevance"

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # Names for generated clients' enums (openapi-python-client, openapi-generator):
        # "-price" is no identifier, and without them it becomes VALUE_5.
        schema = handler.resolve_ref_schema(handler(core_schema))
        schema["x-enum-varnames"] = [member.name for member in cls]
        return schema

    @property
    def column(self) -> str:
        """The column this sort orders by: by name is by name_key (name_key())."""
        column = self.value.lstrip("-")
        return "name_key" if column == "name" else column

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")


class CountMode(enum.StrEnum):
    NONE = "none"
    ESTIMATED = "estimated"
    EXACT = "exact"


@dataclass(frozen=True)
class ProductFilters:
    """Every filter of GET /products; all combine (AND)."""

    q: str | None = None
    category: str | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    in_stock: bool | None = None

    def scope(self, sort: ProductSort) -> str:
        """The query a cursor belongs to."""
        return repr((sort.value, *(getattr(self, name) for name in self.__dataclass_fields__)))


def _finds_something(q: str | None) -> str | None:
    # Each database answered a query of only exclusions its own way (PostgreSQL: almost
    # every product; SQLite and MariaDB: none); refused everywhere instead.
    if q is not None and not finds_something(q):
        raise PydanticCustomError(
            "nothing_to_find",
            "names no word to find, only words to leave out: add a word to search for",
        )
    return q


# Deeper than this, `offset` is refused with a pointer to `cursor` (ProductQuery._capped).
OFFSET_CAP = 10_000


class ProductQuery(BaseModel):
    """The query string of GET /products: filters, order and paging, with the rules that
    tie them together (a 422 naming the parameter, like any other bad value)."""

    q: Annotated[str | None, BeforeValidator(normal_text), AfterValidator(_finds_something)] = (
        Field(
            default=None,
            min_length=1,
            max_length=200,
            pattern=NO_CONTROL_CHARACTERS,
            description="Full-text search in name and description; results by relevance. "
            "At least one word to find: a query that only leaves words out (`-toy`) is 422",
            examples=['dinosaur -"pop-up"'],
        )
    )
    category: Annotated[str | None, BeforeValidator(normal_category)] = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=CATEGORY,
        description="Only this category, spelled as categories are stored: `Books` and "
        "` books ` find `books`",
        examples=["books"],
    )
    # Strings checked by the pattern, so that "10.0000001" is refused, not rounded.
    price_min: str | None = Field(
        default=None,
        pattern=_PRICE_PATTERN,
        description="Lowest price, inclusive, as a decimal string",
        examples=["10.00"],
    )
    price_max: str | None = Field(
        default=None,
        pattern=_PRICE_PATTERN,
        description="Highest price, inclusive, as a decimal string",
        examples=["49.99"],
    )
    created_after: UTCTimestamp | None = Field(
        default=None,
        description="Created at or after this time (without an offset: UTC)",
        examples=["2025-01-01T00:00:00Z"],
    )
    created_before: UTCTimestamp | None = Field(
        default=None,
        description="Created before this time (without an offset: UTC)",
        examples=["2026-01-01T00:00:00Z"],
    )
    in_stock: bool | None = Field(
        default=None,
        description="true: only products with stock; false: only those without",
        examples=[True],
    )
    sort: ProductSort | None = Field(
        default=None,
        description="Default: relevance with q, else id; `-` for descending; relevance needs q",
        examples=["-price"],
    )
    limit: int = Field(default=20, ge=1, le=200, description="Products per page", examples=[20])
    cursor: str | None = Field(
        default=None,
        max_length=1024,
        description="next_cursor of the previous page",
        examples=["eyJrIjpbNDJdfQ.2b1c"],
    )
    offset: int = Field(
        default=0,
        ge=0,
        json_schema_extra={"maximum": OFFSET_CAP},
        description="at most 10,000; deeper: cursor",
        examples=[0],
    )
    count: CountMode = Field(
        default=CountMode.NONE,
        description="`total`: none (null), estimated (the planner's guess) or exact",
        examples=["exact"],
    )

    @field_validator("offset")
    @classmethod
    def _capped(cls, offset: int) -> int:
        if offset > OFFSET_CAP:
            raise PydanticCustomError(
                "offset_cap",
                "at most {cap}; follow next_cursor to page deeper",
                {"cap": OFFSET_CAP},
            )
        return offset

    @field_validator("sort")
    @classmethod
    def _relevance_needs_q(
        cls, sort: "ProductSort | None", info: ValidationInfo
    ) -> "ProductSort | None":
        # A q that failed its own checks is not in info.data: its error is the one to show.
        if sort is ProductSort.RELEVANCE and "q" in info.data and info.data["q"] is None:
            raise PydanticCustomError("needs_q", "relevance ranks search results: give q too")
        return sort

    @property
    def order(self) -> "ProductSort":
        """The sort asked for, else relevance with q, else id."""
        if self.sort is not None:
            return self.sort
        return ProductSort.RELEVANCE if self.q is not None else ProductSort.ID

    def filters(self) -> ProductFilters:
        return ProductFilters(
            q=self.q,
            category=self.category,
            price_min=Decimal(self.price_min) if self.price_min is not None else None,
            price_max=Decimal(self.price_max) if self.price_max is not None else None,
            created_after=self.created_after,
            created_before=self.created_before,
            in_stock=self.in_stock,
        )


class ProductPage(BaseModel):
    """One page of products; later versions add fields, never remove them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [_EXAMPLE_READ],
                    "next_cursor": "eyJrIjpbNDJdfQ.2b1c",
                    "previous_cursor": None,
                    "total": None,
                    "limit": 20,
                    "offset": 0,
                }
            ]
        }
    )

    items: list[ProductRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page (also in the Link header); "
        "null on the last page"
    )
    previous_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the page before this one (also in the Link "
        'header, rel="prev"); null on the first page',
    )
    total: int | None = Field(
        description="How many products match: with count=exact, or the planner's "
        "estimate with count=estimated; null with count=none (the default)"
    )
    limit: int
    offset: int
