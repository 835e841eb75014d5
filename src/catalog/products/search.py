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

from catalog.products.models import Product

__all__ = ["Search", "search"]

# A query is read as PostgreSQL's websearch_to_tsquery reads it, on every database:
# words must all match; "a quoted phrase" matches its words in that order; a word or
# phrase after `-` must not match; `or` between terms offers alternatives. Only the
# words (\w+) of the query reach SQLite's and MariaDB's query syntax, each quoted or
# marked by us, so no operator of theirs comes from the client.
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(-?)([^\s"]+)', re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_TERMS = 16
_FTS = table("products_fts", column("rowid"))


@dataclass(frozen=True)
class _Group:
    """Terms that must all match (each a phrase of one or more words), and terms that
    must not; a query matches when any one of its groups does."""

    required: tuple[tuple[str, ...], ...]
    excluded: tuple[tuple[str, ...], ...]


def _groups(q: str) -> list[_Group]:
    groups: list[_Group] = []
    required: list[tuple[str, ...]] = []
    excluded: list[tuple[str, ...]] = []
    terms = 0
    for match in _TOKEN.finditer(q):
        quote_minus, quoted, word_minus, bare = match.groups()
        if bare is not None and not word_minus and bare.lower() == "or":
            if required or excluded:
                groups.append(_Group(tuple(required), tuple(excluded)))
            required, excluded = [], []
            continue
        words = tuple(_WORD.findall(quoted if quoted is not None else bare))
        if not words or terms >= _MAX_TERMS:
            continue
        terms += 1
        (excluded if (quote_minus or word_minus) else required).append(words)
    if required or excluded:
        groups.append(_Group(tuple(required), tuple(excluded)))
    # A group that only excludes would match almost everything; neither SQLite's FTS5
    # nor MariaDB's boolean mode can say it, so it is dropped on every database but
    # PostgreSQL.
    return [group for group in groups if group.required]


def _fts5_query(groups: list[_Group]) -> str:
    def phrase(words: tuple[str, ...]) -> str:
        return '"' + " ".join(words) + '"'  # FTS5: the words in this order

    alternatives = []
    for group in groups:
        text = "(" + " AND ".join(phrase(words) for words in group.required) + ")"
        for words in group.excluded:
            text = f"({text} NOT {phrase(words)})"
        alternatives.append(text)
    return " OR ".join(alternatives)


def _boolean_mode_query(groups: list[_Group]) -> str:
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
    if dialect == "postgresql":
        # websearch_to_tsquery takes any text ("dinosaur -toy", quotes) and never errors.
        # The configuration is a constant of ours, written as SQL text; q is a bind.
        query = func.websearch_to_tsquery(literal_column("'english'::regconfig"), q)
        vector: ColumnElement[Any] = literal_column("products.search_vector")
        return Search(
            condition=vector.op("@@")(query), rank=func.ts_rank(vector, query, type_=Float)
        )
    groups = _groups(q)
    if not groups:
        return Search(condition=false(), rank=literal(0.0))
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
