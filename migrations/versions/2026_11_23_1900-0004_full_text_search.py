"""full-text search over product names and descriptions, with each dialect's own index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 19:00:00

PostgreSQL: a generated tsvector column with a GIN index. Words are stemmed ("dinosaur"
finds "dinosaurs") and ranked; pg_trgm would serve substring matches better, but a
catalog search is for words, and a trigram index is several times larger.
SQLite: an FTS5 table over the products table (porter stemmer), kept in sync by
triggers, so no write path can forget it.
MariaDB/MySQL: a FULLTEXT index on (name, description).
These objects are not in the models (no portable way to say them); the models-migrations
comparison leaves them out (catalog.models.migrations).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_TRIGGERS = (
    """CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
        INSERT INTO products_fts(rowid, name, description)
        VALUES (new.id, new.name, new.description);
    END""",
    """CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
        INSERT INTO products_fts(products_fts, rowid, name, description)
        VALUES ('delete', old.id, old.name, old.description);
    END""",
    """CREATE TRIGGER products_fts_update AFTER UPDATE OF name, description ON products BEGIN
        INSERT INTO products_fts(products_fts, rowid, name, description)
        VALUES ('delete', old.id, old.name, old.description);
        INSERT INTO products_fts(rowid, name, description)
        VALUES (new.id, new.name, new.description);
    END""",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "ALTER TABLE products ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
            "(to_tsvector('english', name || ' ' || description)) STORED"
        )
        op.execute("CREATE INDEX ix_products_search_vector ON products USING gin (search_vector)")
    elif dialect == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE products_fts USING fts5(name, description, "
            "content='products', content_rowid='id', tokenize='porter unicode61')"
        )
        for trigger in _SQLITE_TRIGGERS:
            op.execute(trigger)
        op.execute("INSERT INTO products_fts(products_fts) VALUES ('rebuild')")
    elif dialect in ("mysql", "mariadb"):
        op.execute("CREATE FULLTEXT INDEX ix_products_fulltext ON products (name, description)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP INDEX ix_products_search_vector")
        op.execute("ALTER TABLE products DROP COLUMN search_vector")
    elif dialect == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER products_fts_{name}")
        op.execute("DROP TABLE products_fts")
    elif dialect in ("mysql", "mariadb"):
        op.execute("DROP INDEX ix_products_fulltext ON products")
