"""A search query as the service reads it, on every database (products.search).

Words must all match; "a quoted phrase" matches its words in that order; a word or
phrase after `-` must not match; `or` between terms offers alternatives: as PostgreSQL's
websearch_to_tsquery reads a query. Parsed here, once, and given to each database as
its own terms, never as the client's text in its query syntax.
"""

import re
from dataclasses import dataclass

__all__ = ["Group", "finds_something", "groups_of"]

# Only the words (\w+) of the query reach a database, each quoted or marked by
# products.search, so no operator of a database's query syntax comes from the client.
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(-?)([^\s"]+)', re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_TERMS = 16


@dataclass(frozen=True)
class Group:
    """Terms that must all match (each a phrase of one or more words), and terms that
    must not; a query matches when any one of its groups does."""

    required: tuple[tuple[str, ...], ...]
    excluded: tuple[tuple[str, ...], ...]


def groups_of(q: str) -> list[Group]:
    """The alternatives `q` offers, each with what must and must not match."""
    found: list[Group] = []
    required: list[tuple[str, ...]] = []
    excluded: list[tuple[str, ...]] = []
    terms = 0
    for match in _TOKEN.finditer(q):
        quote_minus, quoted, word_minus, bare = match.groups()
        if bare is not None and not word_minus and bare.lower() == "or":
            if required or excluded:
                found.append(Group(tuple(required), tuple(excluded)))
            required, excluded = [], []
            continue
        words = tuple(_WORD.findall(quoted if quoted is not None else bare))
        if not words or terms >= _MAX_TERMS:
            continue
        terms += 1
        (excluded if (quote_minus or word_minus) else required).append(words)
    if required or excluded:
        found.append(Group(tuple(required), tuple(excluded)))
    # A group that only excludes would match almost everything; neither SQLite's FTS5
    # nor MariaDB's boolean mode can say it, so it is dropped on every database (a
    # query with no other group is refused: finds_something).
    return [group for group in found if group.required]


def finds_something(q: str) -> bool:
    """Whether `q` names at least one word or phrase to find, rather than only words to
    leave out ("-toy") or no word at all ("!!!"): the service refuses such a query with
    422 on every database, where each would have answered it its own way."""
    return bool(groups_of(q))
