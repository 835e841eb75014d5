"""The products table."""

from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Index, Integer, String, Text
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.base import (
    Base,
    BigIntPrimaryKey,
    CodePointString,
    ExactString,
    Money,
    TimestampMixin,
)
from catalog.products.schemas import NAME_KEY_LENGTH, name_key

__all__ = ["Category", "Product"]


def _name_key_of_insert(context: DefaultExecutionContext) -> str:
    # For writers that give a name and no key (a script's bulk insert, say).
    parameters: dict[str, Any] = context.get_current_parameters()  # type: ignore[no-untyped-call]
    return name_key(str(parameters["name"]))


class Product(TimestampMixin, Base):
    __tablename__ = "products"
    __table_args__ = (
        # The API refuses these too; the database is the last line of defence for
        # writers that bypass it (imports, scripts, concurrent stock changes).
        CheckConstraint("stock >= 0", name="stock_non_negative"),
        CheckConstraint("price >= 0", name="price_non_negative"),
        # One index per sort of GET /products, ending in id: a keyset page is a range
        # scan from the cursor, whatever the sort, and ties come out in id order.
        Index("ix_products_name_key_id", "name_key", "id"),
        Index("ix_products_price_id", "price", "id"),
        Index("ix_products_created_at_id", "created_at", "id"),
        # The category filter, alone or with a price range or sort.
        Index("ix_products_category_price_id", "category", "price", "id"),
        # Never reuse the id of a deleted product (as PostgreSQL and MariaDB do not).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPrimaryKey, primary_key=True)
    # Compared exactly on every database: SKU-a and sku-a are two products.
    sku: Mapped[str] = mapped_column(ExactString(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # What sort=name orders by, the same on every database (products.schemas.name_key):
    # set with every name written (products.repository), else from the name inserted.
    name_key: Mapped[str] = mapped_column(
        CodePointString(NAME_KEY_LENGTH), default=_name_key_of_insert, server_default=""
    )
    description: Mapped[str] = mapped_column(Text, default="")
    price: Mapped[Decimal] = mapped_column(Money())
    stock: Mapped[int] = mapped_column(Integer, default=0)
    category: Mapped[str | None] = mapped_column(ExactString(100))
    # The product's ETag: 1 when created, one more with every change, which
    # products.repository makes in one guarded UPDATE (`WHERE version IN (<If-Match>)`),
    # so a concurrent change is refused with 412 instead of being lost.
    version: Mapped[int] = mapped_column(Integer)


class Category(Base):
    """Each category products have been given, with how many have it now.

    Kept by products.repository in the same transaction as every product write (and
    counted again after a bulk load), so that the pages list the categories and their
    counts from a few rows instead of a scan of the products: no database can skip-scan
    the category index, and a million products made that scan 0.1 to 2.5 s. A category
    whose last product left keeps its row at 0 (a concurrent write may be adding one
    back) and is not listed.
    """

    __tablename__ = "categories"
    __table_args__ = (CheckConstraint("product_count >= 0", name="product_count_non_negative"),)

    # As products.category stores it: normalised (products.schemas.normal_category).
    name: Mapped[str] = mapped_column(ExactString(100), primary_key=True)
    product_count: Mapped[int] = mapped_column(Integer)
