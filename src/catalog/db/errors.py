"""Database errors read the same way on every dialect.

Each driver words a constraint violation differently: PostgreSQL gives a SQLSTATE and
the constraint's name, MariaDB/MySQL an error number and a message, SQLite only a
message, SQL Server a number and a message. The naming convention in `base.py` makes
the constraint names predictable, so they can be found in all of them.
"""

import enum
import re
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc

__all__ = [
    "ConstraintKind",
    "ConstraintViolation",
    "constraint_violation",
    "is_retryable",
    "is_unavailable",
    "violates",
]


class ConstraintKind(enum.StrEnum):
    UNIQUE = "unique"
    FOREIGN_KEY = "foreign_key"
    CHECK = "check"
    NOT_NULL = "not_null"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ConstraintViolation:
    kind: ConstraintKind
    # The constraint's name, or for SQLite's unique and not-null messages the
    # "table.column" they name; None when the driver does not say.
    constraint: str | None


_PG_SQLSTATES = {
    "23505": ConstraintKind.UNIQUE,
    "23503": ConstraintKind.FOREIGN_KEY,
    "23514": ConstraintKind.CHECK,
    "23502": ConstraintKind.NOT_NULL,
}
_MYSQL_ERRNOS = {
    1062: ConstraintKind.UNIQUE,  # ER_DUP_ENTRY
    1451: ConstraintKind.FOREIGN_KEY,  # ER_ROW_IS_REFERENCED_2
    1452: ConstraintKind.FOREIGN_KEY,  # ER_NO_REFERENCED_ROW_2
    3819: ConstraintKind.CHECK,  # MySQL ER_CHECK_CONSTRAINT_VIOLATED
    4025: ConstraintKind.CHECK,  # MariaDB ER_CONSTRAINT_FAILED
    1048: ConstraintKind.NOT_NULL,  # ER_BAD_NULL_ERROR
}
_MSSQL_ERRNOS = {
    2627: ConstraintKind.UNIQUE,
    2601: ConstraintKind.UNIQUE,
    547: ConstraintKind.FOREIGN_KEY,  # also CHECK; told apart by the message below
    515: ConstraintKind.NOT_NULL,
}
_SQLITE_MESSAGES = (
    (re.compile(r"UNIQUE constraint failed: ([\w.]+)"), ConstraintKind.UNIQUE),
    (re.compile(r"CHECK constraint failed: (\w+)"), ConstraintKind.CHECK),
    (re.compile(r"NOT NULL constraint failed: ([\w.]+)"), ConstraintKind.NOT_NULL),
    (re.compile(r"FOREIGN KEY constraint failed()"), ConstraintKind.FOREIGN_KEY),
)
# MariaDB: "Duplicate entry 'X' for key 'uq_products_sku'", "CONSTRAINT `ck_...` failed";
# SQL Server: "Violation of UNIQUE KEY constraint 'uq_products_sku'".
_QUOTED_NAME = re.compile(r"(?:key|CONSTRAINT|constraint) [`'\"]?([\w.]+)[`'\"]?")


def constraint_violation(error: sa_exc.DBAPIError, dialect_name: str) -> ConstraintViolation | None:
    """Which constraint `error` violated (kind, and name if the driver says), or None.

    Usually an IntegrityError; but MariaDB's driver raises a failed CHECK as an
    OperationalError, so other errors are looked at too.
    """
    if not isinstance(error, sa_exc.IntegrityError) and not _mysql_constraint_errno(
        error, dialect_name
    ):
        return None
    orig = error.orig
    message = str(orig)
    if dialect_name == "postgresql":
        cause = getattr(orig, "__cause__", None)  # asyncpg's own exception
        sqlstate = _sqlstate(error)
        name = getattr(cause, "constraint_name", None) or getattr(orig, "constraint_name", None)
        if name is None and (diag := getattr(orig, "diag", None)) is not None:  # psycopg
            name = diag.constraint_name
        return ConstraintViolation(_PG_SQLSTATES.get(str(sqlstate), ConstraintKind.OTHER), name)
    if dialect_name in ("mysql", "mariadb", "mssql"):
        errno = orig.args[0] if orig is not None and orig.args else None
        table = _MYSQL_ERRNOS if dialect_name != "mssql" else _MSSQL_ERRNOS
        kind = table.get(errno, ConstraintKind.OTHER) if isinstance(errno, int) else _guess(message)
        if dialect_name == "mssql" and "CHECK constraint" in message:
            kind = ConstraintKind.CHECK
        match = _QUOTED_NAME.search(message)
        return ConstraintViolation(kind, match.group(1) if match else None)
    if dialect_name == "sqlite":
        for pattern, kind in _SQLITE_MESSAGES:
            if match := pattern.search(message):
                return ConstraintViolation(kind, match.group(1) or None)
    return ConstraintViolation(_guess(message), None)


def violates(error: sa_exc.DBAPIError, dialect_name: str, kind: ConstraintKind) -> bool:
    """Whether `error` is the violation of a constraint of `kind`."""
    violation = constraint_violation(error, dialect_name)
    return violation is not None and violation.kind is kind


def _mysql_constraint_errno(error: sa_exc.DBAPIError, dialect_name: str) -> bool:
    args: tuple[object, ...] = getattr(error.orig, "args", None) or ()
    return dialect_name in ("mysql", "mariadb") and bool(args) and args[0] in _MYSQL_ERRNOS


def _guess(message: str) -> ConstraintKind:
    lowered = message.lower()
    for needle, kind in (
        ("unique", ConstraintKind.UNIQUE),
        ("duplicate", ConstraintKind.UNIQUE),
        ("foreign key", ConstraintKind.FOREIGN_KEY),
        ("check", ConstraintKind.CHECK),
        ("null", ConstraintKind.NOT_NULL),
    ):
        if needle in lowered:
            return kind
    return ConstraintKind.OTHER


# PostgreSQL SQLSTATEs (and classes) that mean "not now": connection exceptions (08),
# insufficient resources (53, e.g. too many connections), the server shutting down,
# starting up or cancelling a statement on timeout (57P01-57P03, 57014), and
# serialization failures and deadlocks (40001, 40P01), which a retry resolves.
_PG_UNAVAILABLE = ("08", "53", "57P01", "57P02", "57P03", "57014", "40001", "40P01")
# MariaDB/MySQL: can't connect (2002, 2003), server gone or connection lost (2006,
# 2013, 2055), too many connections (1040), shutdown in progress (1053), lock wait
# timeout (1205), deadlock (1213), query interrupted or connection killed (1317,
# 1927), statement timeout (1969, 3024), idle transaction timeout (4031), a server that
# is read-only or not ready (1290, 1836; Galera's "WSREP has not yet prepared node",
# 1047).
_MYSQL_UNAVAILABLE = {
    1040, 1047, 1053, 1205, 1213, 1290, 1317, 1836, 1927, 1969,
    2002, 2003, 2006, 2013, 2055, 3024, 4031,
}  # fmt: skip
# SQLite: a lock held too long (SQLITE_BUSY, SQLITE_LOCKED), the disk (SQLITE_IOERR and
# its extended codes, SQLITE_FULL), the file (SQLITE_CANTOPEN, SQLITE_PROTOCOL).
_SQLITE_UNAVAILABLE = {5, 6, 10, 13, 14, 15}


def _sqlstate(error: sa_exc.DBAPIError) -> str | None:
    orig = error.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        sqlstate = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(sqlstate, str):
            return sqlstate
    return None


def _error_number(error: sa_exc.DBAPIError) -> int | None:
    # MySQL drivers put the server's or client's error number first (0: none, as
    # asyncmy says of a connection it found closed).
    args: tuple[object, ...] = getattr(error.orig, "args", None) or ()
    return args[0] if args and type(args[0]) is int and args[0] else None


def is_unavailable(error: BaseException) -> bool:
    """True when `error` means the database cannot serve now, and a retry later may work.

    Pool exhaustion, a connection lost or refused, a server shutting down or
    restarting, a connect or statement timeout, SQLite's lock wait running out, a
    deadlock: answered 503 with Retry-After rather than 500. An error the database
    gives a code for is judged by that code alone: an unknown column or a syntax error
    is a bug (500), whatever class the driver raises it as.
    """
    if isinstance(error, sa_exc.TimeoutError):  # no connection free within pool_timeout
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        if (sqlstate := _sqlstate(error)) is not None:
            return sqlstate.startswith(_PG_UNAVAILABLE)
        sqlite_code = getattr(error.orig, "sqlite_errorcode", None)
        if isinstance(sqlite_code, int):
            return sqlite_code & 0xFF in _SQLITE_UNAVAILABLE  # the primary code
        if (number := _error_number(error)) is not None:
            return number in _MYSQL_UNAVAILABLE
        # No code at all: the driver lost or could not open the connection itself.
        return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
    return isinstance(error, OSError | TimeoutError)


_PG_RETRYABLE = ("40001", "40P01")  # serialization failure, deadlock
_MYSQL_RETRYABLE = {1213, 1205}  # deadlock, lock wait timeout


def is_retryable(error: BaseException) -> bool:
    """True for a transaction the database aborted to break a deadlock or keep
    transactions serializable: running it again from the start is safe and usually works."""
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if (sqlstate := _sqlstate(error)) is not None:
        return sqlstate in _PG_RETRYABLE
    return _error_number(error) in _MYSQL_RETRYABLE
