"""Every model, imported in one place so that `Base.metadata` is complete (Alembic, tests)."""

from catalog.db.base import Base
from catalog.products.models import Product

__all__ = ["Base", "Product"]
