"""categories as data: each spelled one way, with its product count

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 18:00:00

- categories (name, product_count): every category products have, with how many have
  it, kept by products.repository in the transaction of each product write. The pages
  list categories from it instead of SELECT DISTINCT over the products, which no
  database answers without reading the whole category index (0.1 to 2.5 s at a million
  products on PostgreSQL).
- products.category spelled one way: NFKC, lower case, spaces trimmed and collapsed,
  as the API now normalises it on input ("Kitchen" and "kitchen" were two categories).
  A product whose category changes spelling gets a new version (its ETag changes).
"""

import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As catalog.db.base.ExactString(100) and products.schemas.normal_category were on the
# day of this migration, spelled out so that it never changes when they do.
_CATEGORY = sa.String(100).with_variant(
    mysql.VARCHAR(100, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)
_UTC_DATETIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_SPACES = re.compile(" +")


def _normal(category: str) -> str:
    folded = unicodedata.normalize("NFKC", category).lower()
    return unicodedata.normalize("NFC", _SPACES.sub(" ", folded).strip(" "))


_products = sa.table(
    "products",
    sa.column("category", _CATEGORY),
    sa.column("version", sa.Integer()),
    sa.column("updated_at", _UTC_DATETIME),
)
_categories = sa.table(
    "categories", sa.column("name", _CATEGORY), sa.column("product_count", sa.Integer())
)


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("name", _CATEGORY, nullable=False),
        sa.Column("product_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_categories")),
        sa.CheckConstraint(
            "product_count >= 0", name=op.f("ck_categories_product_count_non_negative")
        ),
        mysql_charset="utf8mb4",
    )
    bind = op.get_bind()
    spelled = bind.execute(
        sa.select(_products.c.category).where(_products.c.category.is_not(None)).distinct()
    ).scalars()
    now = datetime.now(UTC)
    if bind.dialect.name != "postgresql":  # the others store UTC without a zone
        now = now.replace(tzinfo=None)
    for category in list(spelled):
        normal = _normal(category)
        if normal != category:
            bind.execute(
                sa.update(_products)
                .where(_products.c.category == category)
                .values(category=normal, version=_products.c.version + 1, updated_at=now)
            )
    counted = (
        sa.select(_products.c.category, sa.func.count())
        .where(_products.c.category.is_not(None))
        .group_by(_products.c.category)
    )
    bind.execute(sa.insert(_categories).from_select(["name", "product_count"], counted))


def downgrade() -> None:
    # The spellings before the upgrade are not kept: they stay normalised.
    op.drop_table("categories")
