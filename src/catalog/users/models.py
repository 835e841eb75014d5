"""The users table."""

import enum

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from catalog.db.base import Base, BigIntPrimaryKey, ExactString, TimestampMixin

__all__ = ["Role", "User"]


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


class User(TimestampMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Every role the code knows, and no other (on SQLite, triggers: migration 0005).
        CheckConstraint(
            "role IN (" + ", ".join(f"'{role.value}'" for role in Role) + ")", name="role_known"
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPrimaryKey, primary_key=True)
    # Stored in canonical form (users.schemas.canonical_email) and compared exactly.
    email: Mapped[str] = mapped_column(ExactString(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # Exact, so that the CHECK refuses "Admin" on MariaDB too.
    role: Mapped[str] = mapped_column(ExactString(16), default=Role.CUSTOMER.value)
    # Named by every token made for the account; signing out adds one, which ends them
    # all (users.service.end_sessions).
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
