"""MariaDB/MySQL: every table in utf8mb4, whatever the server's default character set

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:00:00

The tables took the database's default character set. On a server whose default is
latin1 (mariadbd's own default, which a Galera node configured from scratch keeps), a
product named with an emoji failed with error 1366 and answered 500. Each table with a
column in another character set gets utf8mb4 as its default and those columns converted
to utf8mb4 (with its default collation), in one ALTER per table. Columns already in
utf8mb4, such as revision 0005's binary-collated ones, are not touched: a CONVERT TO of
the whole table would pass them through the case-insensitive collation, and a unique
index holding "ABC" and "abc" would then fail. Tables already in utf8mb4 are not rebuilt.
Other databases: nothing to do.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("users", "products", "orders", "order_lines")
_NOT_UTF8MB4 = sa.text(
    "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT"
    " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()"
    " AND TABLE_NAME = :table AND CHARACTER_SET_NAME IS NOT NULL"
    " AND CHARACTER_SET_NAME <> 'utf8mb4' ORDER BY ORDINAL_POSITION"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb"):
        return
    for table in _TABLES:
        columns = bind.execute(_NOT_UTF8MB4, {"table": table}).all()
        if not columns:
            continue
        changes = ["DEFAULT CHARACTER SET utf8mb4"]
        for name, column_type, nullable, default in columns:
            # The column as it is (type, nullability, default), in utf8mb4. MariaDB
            # shows a default as the SQL literal (quoted), MySQL as the bare value.
            clause = f"MODIFY `{name}` {column_type} CHARACTER SET utf8mb4"
            clause += " NULL" if nullable == "YES" else " NOT NULL"
            if default is not None and default != "NULL":
                literal = (
                    default if default.startswith("'") else "'" + default.replace("'", "''") + "'"
                )
                clause += f" DEFAULT {literal}"
            changes.append(clause)
        op.execute(f"ALTER TABLE `{table}` " + ", ".join(changes))


def downgrade() -> None:
    # Nothing: back to latin1 would lose every character latin1 cannot hold.
    pass
