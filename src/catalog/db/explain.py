"""EXPLAIN of a select, with its parameters bound like any other statement's.

Rendering the select with `literal_binds` and wrapping it in `text()` would put request
values into SQL text; this construct compiles the select as usual (placeholders and
bound parameters) behind the dialect's EXPLAIN, through SQLAlchemy's public compiler
extension. PostgreSQL plans a parameterised EXPLAIN with the values bound, so the
estimate is the one the literal query would get.
"""

from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

__all__ = ["Explain"]


class Explain(Executable, ClauseElement):
    """`EXPLAIN` of `statement` (PostgreSQL: `EXPLAIN (FORMAT JSON)`)."""

    # Estimates are asked for rarely (count=estimated): compiled each time, not cached.
    inherit_cache = False

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    prefix = "EXPLAIN (FORMAT JSON) " if compiler.dialect.name == "postgresql" else "EXPLAIN "
    return prefix + compiler.process(element.statement, **kw)
