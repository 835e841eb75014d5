"""Full-text search over name and description, in each dialect's own way (migrations 0004
and 0010), with one query language: every database is given the terms this module
parsed, never the client's text as its own query syntax."""

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

from catalog.products.models import Product
from catalog.products.terms import Group, groups_of

__all__ = ["Search", "search"]

_FTS = table("products_fts", column("rowid"))
# English stemming without accents (migration 0010): "creme" finds "crème", as it does
# on SQLite (FTS5's unicode61) and MariaDB (its accent-insensitive collation). A
# constant of ours, written as SQL text.
_PG_CONFIG: ColumnElement[Any] = literal_column("'catalog_english'::regconfig")


def _tsquery(groups: list[Group]) -> ColumnElement[Any]:
    # The same groups as the other databases get, as a tsquery built from bound
    # phrases: phraseto_tsquery for each term, joined by tsquery_and/or/not (the
    # functions of the &&, || and !! operators).
    def phrase(words: tuple[str, ...]) -> ColumnElement[Any]:
        return func.phraseto_tsquery(_PG_CONFIG, " ".join(words))

    alternatives = []
    for group in groups:
        query = phrase(group.required[0])
        for words in group.required[1:]:
            query = func.tsquery_and(query, phrase(words))
        for words in group.excluded:
            query = func.tsquery_and(query, func.tsquery_not(phrase(words)))
        alternatives.append(query)
    combined = alternatives[0]
    for alternative in alternatives[1:]:
        combined = func.tsquery_or(combined, alternative)
    return combined


def _fts5_query(groups: list[Group]) -> str:
    def phrase(words: tuple[str, ...]) -> str:
        return '"' + " ".join(words) + '"'  # FTS5: the words in this order

    alternatives = []
    for group in groups:
        text = "(" + " AND ".join(phrase(words) for words in group.required) + ")"
        for words in group.excluded:
            text = f"({text} NOT {phrase(words)})"
        alternatives.append(text)
    return " OR ".join(alternatives)


def _boolean_mode_query(groups: list[Group]) -> str:
    def term(words: tuple[str, ...]) -> str:
        # One word as a prefix (InnoDB does not stem); a phrase exactly.
        return f"{words[0]}*" if len(words) == 1 else '"' + " ".join(words) + '"'

    # Inside each parenthesised group every term is required (+) or excluded (-); the
    # groups themselves are optional, and a row must match one of them.
    return " ".join(
        "("
        + " ".join(
            [f"+{term(words)}" for words in group.required]
            + [f"-{term(words)}" for words in group.excluded]
        )
        + ")"
        for group in groups
    )


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
    groups = groups_of(q)
    if not groups:
        return Search(condition=false(), rank=literal(0.0))
    if dialect == "postgresql":
        query = _tsquery(groups)
        vector: ColumnElement[Any] = literal_column("products.search_vector")
        return Search(
            condition=vector.op("@@")(query), rank=func.ts_rank(vector, query, type_=Float)
        )
    if dialect == "sqlite":
        fts: ColumnElement[Any] = literal_column("products_fts")
        # bm25() is lower for better matches.
        return Search(
            condition=fts.op("MATCH")(_fts5_query(groups)),
            rank=-func.bm25(fts, type_=Float),
            join=_FTS,
        )
    if dialect in ("mysql", "mariadb"):
        columns = (Product.__table__.c.name, Product.__table__.c.description)
        rank = mysql_match(*columns, against=_boolean_mode_query(groups)).in_boolean_mode()
        return Search(condition=rank > 0, rank=rank)

    # Any other database: the same rules with LIKE, unranked.
    def contains(words: tuple[str, ...]) -> ColumnElement[bool]:
        text = " ".join(words)
        return or_(
            Product.name.contains(text, autoescape=True),
            Product.description.contains(text, autoescape=True),
        )

    return Search(
        condition=or_(
            *(
                and_(
                    *(contains(words) for words in group.required),
                    *(~contains(words) for words in group.excluded),
                )
                for group in groups
            )
        ),
        rank=literal(0.0),
    )
