"""MariaDB/MySQL: every table in utf8mb4, whatever the server's default character set

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:00:00

The tables took the database's default character set. On a server whose default is
latin1 (mariadbd's own default, which a Galera node configured from scratch keeps), a
product named with an emoji failed with error 1366 and answered 500. Tables that have
a column in another character set are converted to utf8mb4 (with its default
collation); the columns compared exactly keep the binary collation of revision 0005,
and the description stays a TEXT.
Tables already in utf8mb4 are left alone (no rebuild). Other databases: nothing to do.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("users", "products", "orders", "order_lines")
# (table, column, length, nullable): revision 0005's exactly compared columns, which a
# conversion would give the character set's default collation.
_EXACT_COLUMNS = (
    ("users", "email", 254, False),
    ("users", "role", 16, False),
    ("products", "sku", 64, False),
    ("products", "category", 100, True),
)
_NOT_UTF8MB4 = sa.text(
    "SELECT count(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
    " AND TABLE_NAME = :table AND CHARACTER_SET_NAME IS NOT NULL"
    " AND CHARACTER_SET_NAME <> 'utf8mb4'"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    for table in _TABLES:
        if not bind.execute(_NOT_UTF8MB4, {"table": table}).scalar_one():
            continue
        op.execute(f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4")
        if table == "products":
            # The conversion makes TEXT a MEDIUMTEXT, to keep its capacity in bytes; a
            # description (5,000 characters at most) fits TEXT in utf8mb4.
            op.alter_column(
                table,
                "description",
                type_=sa.Text(),
                existing_type=mysql.MEDIUMTEXT(),
                existing_nullable=False,
            )
        for exact_table, column, length, nullable in _EXACT_COLUMNS:
            if exact_table == table:
                op.alter_column(
                    table,
                    column,
                    type_=mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"),
                    existing_type=sa.String(length),
                    existing_nullable=nullable,
                )


def downgrade() -> None:
    # Nothing: back to latin1 would lose every character latin1 cannot hold.
    pass
