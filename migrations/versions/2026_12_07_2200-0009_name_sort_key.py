"""products.name_key: names sort the same way on every database

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 22:00:00

sort=name ordered by each database's own collation: PostgreSQL's en_US put "apple"
before "Banana", MariaDB's utf8mb4 collation folded case and accents, SQLite compared
bytes ("Banana" before "apple"). The decision: one order everywhere, by Unicode code
point after NFKC and case folding. name_key holds that form of each name (computed here
as products.schemas.name_key computed it on the day of this migration) in a column
compared code point by code point (PostgreSQL's "C" collation, MariaDB's utf8mb4_bin,
SQLite's BINARY), with the index keyset pages need; it replaces the name index.

Existing rows are keyed in batches of 5,000 by id, in the migration's transaction:
at a million products, 10 s on SQLite and 65 s on PostgreSQL on the project's 2-core
machine (docs/benchmarks.md). sort=name is correct once it has finished.
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LENGTH = 400
_KEY = (
    sa.String(_LENGTH)
    .with_variant(postgresql.VARCHAR(_LENGTH, collation="C"), "postgresql")
    .with_variant(
        mysql.VARCHAR(_LENGTH, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )
)
_BATCH = 5_000


def _key(name: str) -> str:
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return folded.rstrip(" ")[:_LENGTH]


def upgrade() -> None:
    # Plain ALTER TABLE on every database (a batch operation would rebuild the SQLite
    # table and lose the triggers of revision 0005).
    op.add_column("products", sa.Column("name_key", _KEY, nullable=False, server_default=""))
    bind = op.get_bind()
    products = sa.table("products", sa.column("id"), sa.column("name"), sa.column("name_key"))
    keyed = (
        sa.update(products)
        .where(products.c.id == sa.bindparam("product_id"))
        .values(name_key=sa.bindparam("key"))
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(products.c.id, products.c.name)
            .where(products.c.id > last)
            .order_by(products.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        bind.execute(keyed, [{"product_id": row.id, "key": _key(row.name)} for row in rows])
        last = rows[-1].id
    op.create_index("ix_products_name_key_id", "products", ["name_key", "id"])
    op.drop_index("ix_products_name_id", table_name="products")


def downgrade() -> None:
    op.create_index("ix_products_name_id", "products", ["name", "id"])
    op.drop_index("ix_products_name_key_id", table_name="products")
    op.drop_column("products", "name_key")
