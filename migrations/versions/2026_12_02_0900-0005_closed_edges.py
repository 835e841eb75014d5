"""order totals that fit every accepted order, known roles only, exact comparisons

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 09:00:00

- orders.total: NUMERIC(12, 2) -> NUMERIC(19, 2). An order of up to 100 lines of
  10,000 units at the highest price (9,999,999,999.99) fits; before, a total above
  9,999,999,999.99 failed on PostgreSQL and MariaDB (SQLite stores cents in a 64-bit
  integer, which holds it already).
- users.role: only the roles the code knows (a CHECK; SQLite cannot add one to an
  existing table without copying it, so there two triggers raise the same error).
- MariaDB/MySQL: users.email, users.role, products.sku and products.category in the binary
  collation, so that they compare exactly as on PostgreSQL and SQLite (the default
  collation found renée@ for renee@, and category=Books found "books").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROLES = "role IN ('customer', 'admin')"
# The message SQLite itself gives for a failed CHECK, so it is read as one.
_SQLITE_ROLE_TRIGGERS = tuple(
    f"""CREATE TRIGGER users_role_known_{event} BEFORE {event} ON users
        WHEN NOT (new.{_ROLES}) BEGIN
        SELECT RAISE(ABORT, 'CHECK constraint failed: ck_users_role_known');
    END"""
    for event in ("INSERT", "UPDATE")
)
# (table, column, length, nullable)
_EXACT_COLUMNS = (
    ("users", "email", 254, False),
    ("users", "role", 16, False),
    ("products", "sku", 64, False),
    ("products", "category", 100, True),
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in _SQLITE_ROLE_TRIGGERS:
            op.execute(trigger)
        return
    op.alter_column(
        "orders",
        "total",
        type_=sa.Numeric(19, 2),
        existing_type=sa.Numeric(12, 2),
        existing_nullable=False,
    )
    if dialect in ("mysql", "mariadb"):
        # Before the CHECK, so that it compares roles exactly too.
        for table, column, length, nullable in _EXACT_COLUMNS:
            op.alter_column(
                table,
                column,
                type_=mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"),
                existing_type=sa.String(length),
                existing_nullable=nullable,
            )
    op.create_check_constraint(op.f("ck_users_role_known"), "users", _ROLES)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for event in ("INSERT", "UPDATE"):
            op.execute(f"DROP TRIGGER users_role_known_{event}")
        return
    op.drop_constraint(op.f("ck_users_role_known"), "users", type_="check")
    if dialect in ("mysql", "mariadb"):
        for table, column, length, nullable in _EXACT_COLUMNS:
            op.alter_column(
                table,
                column,
                type_=mysql.VARCHAR(length, charset="utf8mb4"),
                existing_type=sa.String(length),
                existing_nullable=nullable,
            )
    op.alter_column(
        "orders",
        "total",
        type_=sa.Numeric(12, 2),
        existing_type=sa.Numeric(19, 2),
        existing_nullable=False,
    )
