"""OpenTelemetry tracing (CATALOG_TRACING): the spans of a request, on every backend, and
nothing of it when it is off."""

import inspect
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from catalog.logs import JsonLineFormatter, RequestIdFilter
from catalog.main import create_app
from catalog.tracing import REQUEST_ID_ATTRIBUTE, TracingUnavailableError, current_trace_id
from tests.conftest import Backend, clean_tables
from tests.helpers import bearer, create_user, only_on, product_payload, started


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """Every span the app under test ends, kept in memory."""
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(spans: InMemorySpanExporter) -> Iterator[TracerProvider]:
    # The test's own provider, handed to the app: nothing global, nothing left at exit.
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider
    provider.shutdown()


async def _client_of(
    backend: Backend, tracer_provider: TracerProvider, *, tracing: bool
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(backend.settings(tracing=tracing), tracer_provider=tracer_provider)
    async with started(app):
        await clean_tables(app.state.engine)
        admin_id = await create_user(app.state.engine, "admin@example.com", admin=True)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://catalog.test",
            headers=bearer(admin_id, app.state.settings),
        ) as client:
            yield client


@pytest.fixture
async def traced(
    backend: Backend, tracer_provider: TracerProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a started app with CATALOG_TRACING on, its spans in `spans`."""
    async for client in _client_of(backend, tracer_provider, tracing=True):
        yield client


@pytest.fixture
async def untraced(
    backend: Backend, tracer_provider: TracerProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """The same app with CATALOG_TRACING off (the default), given the same provider."""
    async for client in _client_of(backend, tracer_provider, tracing=False):
        yield client


async def _product_read_alone(client: httpx.AsyncClient, spans: InMemorySpanExporter) -> str:
    """The path of a product that was read once already, with no span recorded yet."""
    response = await client.post("/products", json=product_payload())
    assert response.status_code == 201, response.text
    path = response.headers["location"]
    # The first read may open the pool's connection, with its own statements.
    assert (await client.get(path)).status_code == 200
    spans.clear()
    return path


def _database_spans(spans: tuple[ReadableSpan, ...]) -> list[ReadableSpan]:
    return [s for s in spans if s.kind is SpanKind.CLIENT and "db.system" in (s.attributes or {})]


async def test_reading_a_product_is_one_server_span_with_its_one_statement_under_it(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    path = await _product_read_alone(traced, spans)

    response = await traced.get(path)

    assert response.status_code == 200
    finished = spans.get_finished_spans()
    (server,) = [s for s in finished if s.kind is SpanKind.SERVER]
    (statement,) = _database_spans(finished)
    assert server.name == "GET /products/{product_id}"
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/products/{product_id}"
    assert server.attributes[REQUEST_ID_ATTRIBUTE] == response.headers["X-Request-ID"]
    assert statement.parent is not None
    assert statement.parent.span_id == server.context.span_id
    assert statement.context.trace_id == server.context.trace_id
    assert statement.resource is server.resource


async def test_a_request_is_not_traced_when_tracing_is_off(
    untraced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    path = await _product_read_alone(untraced, spans)

    assert (await untraced.get(path)).status_code == 200

    assert spans.get_finished_spans() == ()


@only_on("sqlite")
async def test_probes_and_scrapes_are_not_traced(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    assert (await traced.get("/health/live")).status_code == 200
    assert (await traced.get("/health/ready")).status_code == 200

    assert spans.get_finished_spans() == ()


def test_the_trace_id_of_the_current_span_is_there_for_log_lines(
    tracer_provider: TracerProvider,
) -> None:
    assert current_trace_id() is None
    with tracer_provider.get_tracer(__name__).start_as_current_span("request") as span:
        assert current_trace_id() == f"{span.get_span_context().trace_id:032x}"
    assert current_trace_id() is None


@only_on("sqlite")
def test_tracing_without_the_otel_extra_refuses_to_start_and_says_what_to_install(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the extra were not installed: importing the instrumentation fails.
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.fastapi", None)

    with pytest.raises(TracingUnavailableError, match=r"pip install 'catalog\[otel\]'"):
        create_app(backend.settings(tracing=True))


# Run in a process of its own: this one has imported OpenTelemetry for the tests above.
# FastAPI imports OpenTelemetry's API itself, and redis its metrics SDK when installed;
# what tracing adds (the tracing SDK, the instrumentations, the exporter) must stay out.
_UNTRACED_PROCESS = """
import asyncio, sys
import httpx
from asgi_lifespan import LifespanManager
from catalog.config import Settings
from catalog.main import create_app

async def main() -> None:
    app = create_app(Settings(database_url=sys.argv[1]))
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=120):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/products/1")).status_code == 404
    tracing = ("opentelemetry.sdk.trace", "opentelemetry.instrumentation", "opentelemetry.exporter")
    print(sorted(name for name in sys.modules if name.startswith(tracing)))

asyncio.run(main())
"""


@only_on("sqlite")
def test_with_tracing_off_no_tracing_module_is_even_imported(
    backend: Backend, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _UNTRACED_PROCESS, backend.url],
        env={
            **os.environ,
            "CATALOG_JWT_SECRET_FILE": str(tmp_path / "key"),
            "CATALOG_TRACING": "false",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_sqlalchemy_instrumentation_still_takes_what_catalog_tracing_hands_it() -> None:
    # catalog/tracing.py builds EngineTracer(tracer, engine, connections_usage) itself
    # (its docstring says why); if this fails, change instrument_engine there.
    parameters = list(inspect.signature(EngineTracer).parameters)
    assert parameters[:3] == ["tracer", "engine", "connections_usage"]
    assert all(
        parameter.default is not inspect.Parameter.empty
        for parameter in list(inspect.signature(EngineTracer).parameters.values())[3:]
    )


@only_on("sqlite")
async def test_the_access_line_carries_the_trace_id_of_the_request_span(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    """An operator goes from a log line to its trace: with tracing on, the lines of a
    traced request carry its trace id (catalog.logs, configured for tracing)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(RequestIdFilter(with_trace_id=True))
    access = logging.getLogger("catalog.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        path = await _product_read_alone(traced, spans)
        response = await traced.get(path)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    (server,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (line,) = [line for line in lines if line["request_id"] == response.headers["X-Request-ID"]]
    assert line["trace_id"] == format(server.context.trace_id, "032x")


@only_on("sqlite")
async def test_the_server_span_holds_no_query_string(
    traced: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    """A search term or a cursor is the client's business: the span keeps the path."""
    response = await traced.get("/products", params={"q": "secretsearchterm", "limit": 2})

    assert response.status_code == 200
    (server,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    recorded = json.dumps(dict(server.attributes or {}))
    assert "secretsearchterm" not in recorded
    assert "/products" in recorded
