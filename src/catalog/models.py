"""Every model, imported in one place so that `Base.metadata` is complete (Alembic, tests)."""

from catalog.db.base import Base
from catalog.orders.models import Order, OrderLine
from catalog.products.models import Product
from catalog.users.models import User

__all__ = ["Base", "Order", "OrderLine", "Product", "User"]
