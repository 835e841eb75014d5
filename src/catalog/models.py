"""Every model, imported in one place so that `Base.metadata` is complete, and the
migrations that build them (`migrations`: Alembic, driven by `catalog db`, the service's
start-up checks and the tests)."""

from pathlib import Path

from catalog.db.base import Base
from catalog.db.migrations import Migrations
from catalog.orders.models import Order, OrderLine
from catalog.products.models import Category, Product
from catalog.users.models import User

__all__ = [
    "Base",
    "Category",
    "Order",
    "OrderLine",
    "Product",
    "User",
    "migrations",
    "migrations_dir",
]


def migrations_dir() -> Path:
    """Where the migration scripts are: inside the package when installed from a wheel,
    at the top of the source tree otherwise."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_migrations", package_dir.parent.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(f"no Alembic migrations found next to {package_dir}")


# Migration 0004's full-text search objects, which each dialect spells its own way and
# the models do not describe.
migrations = Migrations(
    script_location=migrations_dir(),
    metadata=Base.metadata,
    extra_indexes={
        "postgresql": {"products": frozenset({"ix_products_search_vector"})},
        "mysql": {"products": frozenset({"ix_products_fulltext"})},
        "mariadb": {"products": frozenset({"ix_products_fulltext"})},
    },
    sqlite_triggers={
        "products": frozenset({"products_fts_insert", "products_fts_delete", "products_fts_update"})
    },
    unmodelled=frozenset(
        {"search_vector", "ix_products_search_vector", "ix_products_fulltext", "products_fts"}
    ),
    unmodelled_prefixes=("products_fts_",),
)
