"""Full-text search over name and description, in each dialect's own way (migration 0004)."""

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    column,
    false,
    func,
    literal,
    literal_column,
    or_,
    table,
)
from sqlalchemy.dialects.mysql import match as mysql_match
from sqlalchemy.ext.asyncio import AsyncConnection

from catalog.products.models import Product

__all__ = ["Search", "rebuild_text_index", "search"]

# The words of a query; everything else (quotes, operators) is dropped before SQLite's
# and MariaDB's query syntax, so no input reaches them unescaped.
_WORD = re.compile(r"\w+", re.UNICODE)
_FTS = table("products_fts", column("rowid"))


@dataclass(frozen=True)
class Search:
    condition: ColumnElement[bool]
    rank: ColumnElement[Any]  # higher is more relevant
    join: Any = None  # SQLite's FTS table, joined on rowid

    def apply(self, statement: Select[Any]) -> Select[Any]:
        """`statement` restricted to the matching products."""
        if self.join is not None:
            statement = statement.join(self.join, self.join.c.rowid == Product.id)
        return statement.where(self.condition)


def search(dialect: str, q: str) -> Search:
    """How to find and rank products matching `q` on `dialect`."""
    words = _WORD.findall(q)[:16]
    if dialect == "postgresql":
        # websearch_to_tsquery takes any text ("dinosaur -toy", quotes) and never errors.
        # The configuration is a constant of ours, written as SQL text; q is a bind.
        query = func.websearch_to_tsquery(literal_column("'english'::regconfig"), q)
        vector: ColumnElement[Any] = literal_column("products.search_vector")
        return Search(
            condition=vector.op("@@")(query), rank=func.ts_rank(vector, query, type_=Float)
        )
    if not words:
        return Search(condition=false(), rank=literal(0.0))
    if dialect == "sqlite":
        # Each word quoted, so FTS5 reads it as text, never as an operator; all must match.
        match = " ".join('"' + word + '"' for word in words)
        fts: ColumnElement[Any] = literal_column("products_fts")
        # bm25() is lower for better matches.
        return Search(
            condition=fts.op("MATCH")(match), rank=-func.bm25(fts, type_=Float), join=_FTS
        )
    if dialect in ("mysql", "mariadb"):
        # Boolean mode: every word required, as a prefix (InnoDB does not stem).
        against = " ".join(f"+{word}*" for word in words)
        columns = (Product.__table__.c.name, Product.__table__.c.description)
        rank = mysql_match(*columns, against=against).in_boolean_mode()
        return Search(condition=rank > 0, rank=rank)
    # Any other database: every word somewhere in name or description, unranked.
    conditions = [
        or_(
            Product.name.contains(word, autoescape=True),
            Product.description.contains(word, autoescape=True),
        )
        for word in words
    ]
    return Search(condition=and_(*conditions), rank=literal(0.0))


async def rebuild_text_index(connection: AsyncConnection) -> None:
    """Fill the text index from the products table, after a bulk load that bypassed it.

    Only SQLite's FTS5 table needs it (its triggers were dropped for the load); the
    other dialects' text indexes are ordinary indexes, rebuilt with the rest.
    """
    if connection.dialect.name == "sqlite":
        await connection.exec_driver_sql(
            "INSERT INTO products_fts(products_fts) VALUES ('rebuild')"
        )
