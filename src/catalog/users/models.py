"""The users table."""

import enum

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.base import Base, BigIntPrimaryKey, TimestampMixin

__all__ = ["Role", "User"]


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012

    id: Mapped[int] = mapped_column(BigIntPrimaryKey, primary_key=True)
    # Stored lower-cased, so uniqueness does not depend on the collation.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.CUSTOMER.value)
