"""PostgreSQL's text search without accents, as SQLite's and MariaDB's already are

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 22:30:00

"creme" found "crème" on SQLite (FTS5's unicode61 tokenizer folds diacritics) and on
MariaDB (the columns' collation ignores accents), but not on PostgreSQL, whose
`english` configuration keeps them. catalog_english is english with the unaccent
dictionary before the stemmer; search_vector is generated with it (a generated column's
expression cannot be altered before PostgreSQL 17: dropped and added again, its GIN
index rebuilt: 17 s at a million products, docs/benchmarks.md). The unaccent
extension is trusted
since PostgreSQL 13: the owner of the database may create it.
Other databases: nothing to do.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _vector(config: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_products_search_vector")
    op.execute("ALTER TABLE products DROP COLUMN search_vector")
    op.execute(
        "ALTER TABLE products ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
        f"(to_tsvector('{config}', name || ' ' || description)) STORED"
    )
    op.execute("CREATE INDEX ix_products_search_vector ON products USING gin (search_vector)")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    # Kept by a database whose tables were dropped and made again (the tests', say);
    # PostgreSQL 15 says a name taken with unique_violation, not duplicate_object.
    op.execute(
        "DO $$ BEGIN CREATE TEXT SEARCH CONFIGURATION catalog_english (COPY = english); "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )
    op.execute(
        "ALTER TEXT SEARCH CONFIGURATION catalog_english "
        "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem"
    )
    _vector("catalog_english")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _vector("english")
    op.execute("DROP TEXT SEARCH CONFIGURATION catalog_english")
