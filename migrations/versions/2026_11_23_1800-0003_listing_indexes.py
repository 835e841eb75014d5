"""indexes for the sorts and filters of GET /products

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_products_name_id", "products", ["name", "id"])
    op.create_index("ix_products_price_id", "products", ["price", "id"])
    op.create_index("ix_products_created_at_id", "products", ["created_at", "id"])
    # Covers what ix_products_category did, as its first column.
    op.create_index("ix_products_category_price_id", "products", ["category", "price", "id"])
    op.drop_index("ix_products_category", table_name="products")


def downgrade() -> None:
    op.create_index("ix_products_category", "products", ["category"])
    op.drop_index("ix_products_category_price_id", table_name="products")
    op.drop_index("ix_products_created_at_id", table_name="products")
    op.drop_index("ix_products_price_id", table_name="products")
    op.drop_index("ix_products_name_id", table_name="products")
