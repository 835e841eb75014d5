"""The orders and order_lines tables."""

import enum
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.db.base import Base, BigIntPrimaryKey, Money, TimestampMixin

__all__ = ["Order", "OrderLine", "OrderStatus"]


class OrderStatus(enum.StrEnum):
    PLACED = "placed"
    CANCELLED = "cancelled"


class Order(TimestampMixin, Base):
    __tablename__ = "orders"
    __table_args__ = (
        # A retried POST /orders with the same Idempotency-Key finds the first order;
        # two racing retries cannot both insert one.
        UniqueConstraint("user_id", "idempotency_key"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPrimaryKey, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.PLACED.value)
    # Wider than a price: up to 100 lines of 10,000 units at the highest price, so that
    # every order the API accepts can be stored (migration 0005).
    total: Mapped[Decimal] = mapped_column(Money(precision=19))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    # SHA-256 of the request body, to tell a retry from a different order under the same key.
    request_hash: Mapped[str | None] = mapped_column(String(64))

    lines: Mapped[list["OrderLine"]] = relationship(
        lazy="selectin", order_by="OrderLine.product_id", cascade="all, delete-orphan"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "product_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(BigIntPrimaryKey, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("orders.id", ondelete="CASCADE"))
    # RESTRICT (the default): a product that was ordered cannot be deleted.
    product_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("products.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Money())
