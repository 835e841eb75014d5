"""Log lines: JSON in production, readable text in development, each with its request id;
one access line per request; slow requests and slow statements.

`logging_config(settings)` is the process's logging (a dictConfig that `catalog serve`
hands to its server, so that every worker applies it). Every record passes the request
id filter at the handler, so every line of a request carries its id, whoever logged it
(the service, SQLAlchemy, the server, a library). Nothing secret is logged by design:
the access line holds the route template, never the path's values or the query string;
a slow statement's SQL is logged without its parameters, and the engine hides them from
error messages (`hide_parameters`), so neither a password hash nor an email reaches a log.
"""

import json
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext

from catalog.config import Settings
from catalog.requestid import current_request_id
from catalog.tracing import current_trace_id

__all__ = [
    "RequestLog",
    "RequestTimes",
    "add_pool_wait",
    "logging_config",
    "observe_statements",
    "request_times",
]

access_logger = logging.getLogger("catalog.access")
statement_logger = logging.getLogger("catalog.sql")

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the id of the request being served (or None) on every record as
    `request_id`, and with tracing on, the current trace's id as `trace_id`."""

    def __init__(self, with_trace_id: bool = False) -> None:
        super().__init__()
        self.with_trace_id = with_trace_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        if self.with_trace_id:
            record.trace_id = current_trace_id()
        return True


class _LineFormatter(logging.Formatter):
    """What both forms share: the time in RFC 3339, UTC, formatted once a second."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._prefix = ""

    def _time(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int(record.msecs):03d}Z"

    def _exception(self, record: logging.LogRecord) -> str | None:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.stack_info:
            return f"{record.exc_text or ''}\n{self.formatStack(record.stack_info)}".strip()
        return record.exc_text or None


class TextFormatter(_LineFormatter):
    """Readable lines for a terminal: time, level, logger, [request id], message."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{self._time(record)} {record.levelname:<7} {record.name} "
            f"[{getattr(record, 'request_id', None) or '-'}] {record.getMessage()}"
        )
        trace = self._exception(record)
        return f"{line}\n{trace}" if trace else line


class JsonLineFormatter(_LineFormatter):
    """One JSON object per line: time, level, logger, message, request_id, trace_id
    (with tracing on, inside a traced request), the fields
    given as `extra={"fields": {...}}` (an access line's method, route, status and
    timings), and a traceback as `exception`.

    Written here rather than with python-json-logger: its general handling of every
    record attribute made a line cost 62 µs of CPU instead of 33 (bench/access_log.py).
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            line["trace_id"] = trace_id
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        trace = self._exception(record)
        if trace:
            line["exception"] = trace
        return json.dumps(line, default=str)


def logging_config(settings: Settings) -> dict[str, Any]:
    """The process's logging as a `logging.config.dictConfig` dictionary."""
    log_format = settings.log_format or ("json" if settings.environment == "production" else "text")
    formatter = "JsonLineFormatter" if log_format == "json" else "TextFormatter"
    # Names rather than classes: the dictionary is plain data (JSON), which a server's
    # --log-config file can hold too.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": f"{__name__}.RequestIdFilter", "with_trace_id": settings.tracing}
        },
        "formatters": {"catalog": {"()": f"{__name__}.{formatter}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "catalog",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["stderr"], "level": settings.log_level},
        "loggers": {
            # The server's own lines go through the same handler; its access log is
            # off (the app's access line replaces it), and so is its own handler.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            # Statements are logged only when echo_sql asks for them; the pool's and the
            # migrations' chatter (dispose, recreate, the DDL mode) is not worth a line.
            "sqlalchemy.engine": {"level": "INFO" if settings.echo_sql else "WARNING"},
            "sqlalchemy.pool": {"level": "WARNING"},
            "catalog.db.pool": {"level": "WARNING"},
            "alembic": {"level": "WARNING"},
            # It warns when a trusted proxy's X-Request-ID is not a plain token, before
            # the request has its id: a line no search by id finds, once per request.
            # The id generated instead is in the response and on the request's lines.
            "asgi_correlation_id": {"level": "ERROR"},
        },
    }


@dataclass(slots=True)
class RequestTimes:
    """Where a request's time went: waiting for a pooled connection, and in statements."""

    pool_wait: float = 0.0
    database: float = 0.0
    statements: int = 0


request_times: ContextVar[RequestTimes | None] = ContextVar("catalog_request_times", default=None)


def add_pool_wait(waited: float) -> None:
    """Count a checkout's wait to the request being served (a pool listener calls it)."""
    times = request_times.get()
    if times is not None:
        times.pool_wait += waited


_STARTED_KEY = "catalog.logs.statement_started"


def observe_statements(engine: Engine, *, slow_seconds: float, route: Any) -> None:
    """Time each statement into the request's RequestTimes, and log the slow ones with
    their SQL (never their parameters) and `route()`, the request's route template."""

    @event.listens_for(engine, "before_cursor_execute")
    def _started(
        conn: Any, _cursor: Any, _statement: str, _params: Any, _ctx: Any, _many: bool
    ) -> None:
        # One statement at a time runs on a connection: one slot is enough.
        conn.info[_STARTED_KEY] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _ended(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        _count(conn, statement)

    @event.listens_for(engine, "handle_error")
    def _failed(context: ExceptionContext) -> None:
        # A statement that failed (a lock wait that timed out, a violated constraint)
        # took its time too: counted, and logged if slow, as one that succeeded.
        if context.connection is not None and context.statement is not None:
            _count(context.connection, context.statement)

    def _count(conn: Any, statement: str) -> None:
        started = conn.info.pop(_STARTED_KEY, None)
        if started is None:
            return
        took = time.perf_counter() - started
        times = request_times.get()
        if times is not None:
            times.database += took
            times.statements += 1
        if slow_seconds and took >= slow_seconds:
            sql = " ".join(statement.split())  # one line, whatever the dialect's layout
            statement_logger.warning(
                "slow statement: %.1f ms in %s: %s",
                took * 1000,
                route(),
                sql,
                extra={
                    "fields": {"duration_ms": round(took * 1000, 3), "route": route(), "sql": sql}
                },
            )


class RequestLog:
    """The access line of each request (INFO), or of a slow one only (WARNING)."""

    __slots__ = ("enabled", "slow_seconds")

    def __init__(self, *, enabled: bool, slow_seconds: float) -> None:
        self.enabled = enabled
        self.slow_seconds = slow_seconds

    def finished(
        self, method: str, route: str, status: int, took: float, times: RequestTimes
    ) -> None:
        slow = bool(self.slow_seconds) and took >= self.slow_seconds
        if not slow and not (self.enabled and access_logger.isEnabledFor(logging.INFO)):
            return
        level = logging.WARNING if slow else logging.INFO
        # makeRecord and handle rather than log(): the line needs no caller's file and
        # line, and finding them walks the stack on every request.
        record = access_logger.makeRecord(
            access_logger.name,
            level,
            "",
            0,
            "%s%s %s %d %.1f ms (pool wait %.1f ms, database %.1f ms in %d statement%s)",
            (
                "slow request: " if slow else "",
                method,
                route,
                status,
                took * 1000,
                times.pool_wait * 1000,
                times.database * 1000,
                times.statements,
                "" if times.statements == 1 else "s",
            ),
            None,
            extra={
                "fields": {
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(took * 1000, 3),
                    "pool_wait_ms": round(times.pool_wait * 1000, 3),
                    "db_ms": round(times.database * 1000, 3),
                    "db_statements": times.statements,
                }
            },
        )
        access_logger.handle(record)
