"""OpenTelemetry tracing (CATALOG_TRACING, the `otel` extra): a server span per request,
named by its route template and carrying the request id, with a client span per SQL
statement under it, exported over OTLP/HTTP to CATALOG_OTLP_ENDPOINT when it is set.

OpenTelemetry is imported here only once tracing is turned on, inside the functions
that need it: with tracing off, importing this module (for `current_trace_id`, on log
lines) loads none of it and no request pays for it.

Each app traces into its own tracer provider, never the process-global one, so that
apps in one process (the tests', an embedding application's) do not mix their spans.
That is also why the statements are traced with the SQLAlchemy instrumentation's
EngineTracer, the listener its instrumentor attaches to an engine, rather than with
`SQLAlchemyInstrumentor().instrument(engine=...)`: the instrumentor is a process-wide
singleton that instruments only the first engine it is given, and it also patches
`create_engine` and `Engine.connect` for the whole process, with a "connect" span on
every pool checkout. tests/test_tracing.py pins the constructor this relies on.
"""

import importlib
import sys
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

import catalog
from catalog.config import Settings
from catalog.requestid import REQUEST_ID_HEADER

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "REQUEST_ID_ATTRIBUTE",
    "TracingUnavailableError",
    "current_trace_id",
    "instrument_app",
    "instrument_engine",
]

# The server span's attribute that holds the request id (X-Request-ID): the key to
# search a tracing backend with for the trace of a request id found in a log or a
# problem body.
REQUEST_ID_ATTRIBUTE = "catalog.request_id"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
# What the `otel` extra installs, checked before tracing starts.
_EXTRA = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.instrumentation.fastapi",
    "opentelemetry.instrumentation.sqlalchemy.engine",
)
# Probes and scrapes every few seconds would bury the requests' traces.
_NOT_TRACED = "/health/,/metrics"


class TracingUnavailableError(RuntimeError):
    """CATALOG_TRACING is on but the `otel` extra is not installed."""


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), or None: no span, or no tracing."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:  # never imported, so no span can exist; and none is imported now
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def instrument_app(
    app: "FastAPI", tracer_provider: "TracerProvider | None" = None
) -> "TracerProvider":
    """Trace the app's requests into `tracer_provider`, by default one made from the
    app's settings; return the provider, for `instrument_engine`."""
    for module in _EXTRA:
        try:
            importlib.import_module(module)
        except ImportError:
            raise TracingUnavailableError(
                f"CATALOG_TRACING is on but {module} is not installed: "
                "pip install 'catalog[otel]', or set CATALOG_TRACING=false"
            ) from None
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    if tracer_provider is None:
        tracer_provider = _provider(app.state.settings)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracer_provider,
        excluded_urls=_NOT_TRACED,
        # A span per ASGI message (each body chunk of an export) is noise, and costs.
        exclude_spans=["receive", "send"],
        server_request_hook=_without_query,
    )
    app.add_middleware(_RequestIdAttribute)
    return tracer_provider


# The attributes, old and new semantic conventions, in which the instrumentation puts the
# request's URL with its query string.
_URL_ATTRIBUTES = ("http.url", "http.target", "url.full")


def _without_query(span: "Span", _scope: dict[str, Any]) -> None:
    """The server span's URL without its query string, which may hold what a client
    searched for or a signed cursor: what a trace says of the request is its route,
    method, status and path, as in the access log."""
    attributes = getattr(span, "attributes", None)  # the SDK's spans expose them
    if not span.is_recording() or not attributes:
        return
    for name in _URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(name, value.split("?", 1)[0])
    if "url.query" in attributes:
        span.set_attribute("url.query", "")


def instrument_engine(engine: "AsyncEngine", tracer_provider: "TracerProvider | None") -> None:
    """Trace each statement of the engine as a client span (no-op without a provider)."""
    if tracer_provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__
    from opentelemetry.metrics import NoOpMeterProvider

    tracer = _InRequests(
        tracer_provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", __version__)
    )
    # The pool is measured by catalog.metrics; the instrumentation's connection
    # counter goes nowhere.
    usage = NoOpMeterProvider().get_meter(__name__).create_up_down_counter("connections")
    EngineTracer(tracer, engine.sync_engine, usage)  # type: ignore[no-untyped-call]


def _provider(settings: Settings) -> "TracerProvider":
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: "catalog", SERVICE_VERSION: catalog.__version__})
    # Without an endpoint spans are still made, so that log lines carry trace ids.
    # The SDK flushes the batch when the process exits (shutdown_on_exit).
    provider = TracerProvider(resource=resource)
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = f"{settings.otlp_endpoint.rstrip('/')}/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


class _InRequests:
    """The tracer EngineTracer starts its spans with: a statement gets one only inside
    a traced request. The readiness probe's SELECT, which is not traced (_NOT_TRACED),
    would otherwise be a trace of its own every few seconds."""

    def __init__(self, tracer: "Tracer") -> None:
        from opentelemetry.trace import INVALID_SPAN, get_current_span

        self.tracer = tracer
        self.current_span = get_current_span
        self.no_span = INVALID_SPAN

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> "Span":
        """A child of the current span, or a span that records nothing if none is."""
        if not self.current_span().is_recording():
            return self.no_span
        return self.tracer.start_span(name, *args, **kwargs)


class _RequestIdAttribute:
    """Puts the request id on the server span: the X-Request-ID of the response, so
    the id a trace carries is the one the client and the logs got. Outside the
    middleware that sets the header, inside the instrumentation's span."""

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry.trace import get_current_span

        self.app = app
        self.current_span = get_current_span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = self.current_span()
        if scope["type"] != "http" or not span.is_recording():
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                for key, value in message.get("headers", ()):
                    if key.lower() == _REQUEST_ID_KEY:
                        span.set_attribute(REQUEST_ID_ATTRIBUTE, value.decode("latin-1"))
                        break
            await send(message)

        await self.app(scope, receive, send_with_id)
