"""Request ids and log lines: every request has an id, in its header, its problem body
and every log line written while serving it; the access line, slow requests and slow
statements, parsed; nothing secret in any line."""

import io
import json
import logging
import logging.config
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from catalog.config import Settings
from catalog.db.session import SessionDep
from catalog.logs import JsonLineFormatter, RequestIdFilter, TextFormatter, logging_config
from tests.helpers import PROBLEM_MEDIA_TYPE, only_on, product_payload, serving
from tests.servers import catalog_server

HEX_ID = re.compile(r"[0-9a-f]{32}")


class Lines:
    """The JSON lines written by catalog's loggers during a test."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def of(self, logger: str) -> list[dict[str, Any]]:
        return [line for line in self.all() if line["logger"] == logger]

    def raw(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def lines() -> Iterator[Lines]:
    """catalog's log lines as the JSON handler writes them (the request id filter and
    formatter of `logging_config`), on a handler of the test's own."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(RequestIdFilter())
    loggers = [logging.getLogger(name) for name in ("catalog", "asgi_correlation_id")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield Lines(stream)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def _product_id(response: httpx.Response) -> int:
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@only_on("sqlite")
async def test_every_request_has_an_id_in_its_header_problem_and_log_lines(
    settings: Settings, lines: Lines
) -> None:
    async with serving(settings) as (_app, client):
        product_id = _product_id(
            await client.post("/products", json=product_payload(sku=f"LOG-{uuid.uuid4().hex[:12]}"))
        )
        found = await client.get(f"/products/{product_id}")
        missing = await client.get("/products/999999999")
    ids = [response.headers["X-Request-ID"] for response in (found, missing)]
    assert all(HEX_ID.fullmatch(value) for value in ids)
    assert ids[0] != ids[1]
    assert missing.headers["Content-Type"] == PROBLEM_MEDIA_TYPE
    assert missing.json()["request_id"] == ids[1]
    access = lines.of("catalog.access")
    by_id = {line["request_id"]: line for line in access}
    read = by_id[ids[0]]
    assert read["level"] == "INFO"
    assert read["method"] == "GET"
    assert read["route"] == "/products/{product_id}"
    assert read["status"] == 200
    assert read["db_statements"] >= 1
    assert read["db_ms"] > 0
    assert read["duration_ms"] >= read["db_ms"]
    assert read["pool_wait_ms"] >= 0
    assert by_id[ids[1]]["status"] == 404
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", read["time"])


@only_on("sqlite")
async def test_a_request_without_the_database_takes_no_statement(
    settings: Settings, lines: Lines
) -> None:
    async with serving(settings) as (_app, client):
        response = await client.get("/health/live")
    (line,) = [
        line
        for line in lines.of("catalog.access")
        if line["request_id"] == response.headers["X-Request-ID"]
    ]
    assert line["route"] == "/health/live"
    assert (line["db_statements"], line["db_ms"], line["pool_wait_ms"]) == (0, 0, 0)


@only_on("sqlite")
async def test_the_id_of_a_trusted_proxy_is_kept_and_anyone_elses_is_replaced(
    settings: Settings, lines: Lines
) -> None:
    # httpx's ASGI transport connects from 127.0.0.1.
    trusted = settings.model_copy(update={"forwarded_allow_ips": "127.0.0.1"})
    async with serving(trusted) as (_app, client):
        kept = await client.get("/health/live", headers={"X-Request-ID": "edge-42"})
        forwarded = await client.get(
            "/products/999999999",
            headers={
                "X-Request-ID": "Root=1-5759e988-bd862e3fe1be46a994272793",
                "X-Forwarded-For": "203.0.113.9",
            },
        )
        bad = await client.get("/health/live", headers={"X-Request-ID": "two words\tand a tab"})
        long = await client.get("/health/live", headers={"X-Request-ID": "x" * 201})
    assert kept.headers["X-Request-ID"] == "edge-42"
    assert forwarded.json()["request_id"] == "Root=1-5759e988-bd862e3fe1be46a994272793"
    for response in (bad, long):
        assert HEX_ID.fullmatch(response.headers["X-Request-ID"])
    assert "edge-42" in [line["request_id"] for line in lines.of("catalog.access")]
    # Anyone else (not a trusted proxy): the header is ignored.
    async with serving(settings) as (_app, client):
        chosen = await client.get("/health/live", headers={"X-Request-ID": "edge-42"})
        problem = await client.get("/nowhere", headers={"X-Request-ID": "edge-43"})
    assert HEX_ID.fullmatch(chosen.headers["X-Request-ID"])
    assert problem.json()["request_id"] == problem.headers["X-Request-ID"] != "edge-43"


@only_on("sqlite")
async def test_a_500_logs_its_traceback_under_the_id_the_client_was_given(
    settings: Settings, lines: Lines
) -> None:
    async with serving(settings) as (app, client):

        @app.get("/test-only/bad-sql")
        async def bad_sql(session: SessionDep) -> None:
            await session.execute(text("SELECT * FROM no_such_table_at_all"))

        response = await client.get("/test-only/bad-sql")
    assert response.status_code == 500
    request_id = response.headers["X-Request-ID"]
    assert response.json()["request_id"] == request_id
    (error,) = [line for line in lines.of("catalog.errors") if line["level"] == "ERROR"]
    assert error["request_id"] == request_id
    assert "no_such_table_at_all" in error["exception"]
    assert "Traceback" in error["exception"]
    (access,) = [line for line in lines.of("catalog.access") if line["request_id"] == request_id]
    assert access["status"] == 500
    # The statement that failed took its time too.
    assert access["db_statements"] >= 1
    assert access["db_ms"] > 0


@only_on("sqlite", "postgresql", "mariadb")
async def test_slow_statements_and_requests_are_logged_without_any_value_of_the_request(
    settings: Settings, lines: Lines
) -> None:
    slow = settings.model_copy(
        update={"slow_statement_seconds": 1e-9, "slow_request_seconds": 1e-9}
    )
    email, password = f"leak-{uuid.uuid4().hex[:8]}@example.com", "Correct-Horse-Battery-9"
    async with serving(slow) as (_app, client):
        signed_up = await client.post("/users", json={"email": email, "password": password})
        assert signed_up.status_code == 201, signed_up.text
        token = await client.post("/auth/token", data={"username": email, "password": password})
        assert token.status_code == 200, token.text
        secret_token = token.json()["access_token"]
        me = await client.get("/users/me", headers={"Authorization": f"Bearer {secret_token}"})
        assert me.status_code == 200
        searched = await client.get("/products", params={"q": "zanzibarquux"})
        assert searched.status_code == 200
    statements = lines.of("catalog.sql")
    assert statements, "no slow statement was logged"
    for line in statements:
        assert line["level"] == "WARNING"
        assert line["sql"]
        assert line["duration_ms"] >= 0
        assert HEX_ID.fullmatch(line["request_id"] or "") or line["route"] == "<none>"
    insert = [line for line in statements if line["sql"].upper().startswith("INSERT INTO USERS")]
    assert insert
    assert insert[0]["route"] == "/users"
    slow_requests = [line for line in lines.of("catalog.access") if line["level"] == "WARNING"]
    assert {line["route"] for line in slow_requests} >= {"/users", "/auth/token", "/products"}
    assert all(line["message"].startswith("slow request: ") for line in slow_requests)
    everything = lines.raw()
    for secret in (email, password, secret_token, "zanzibarquux", "argon2"):
        assert secret not in everything


@only_on("sqlite")
async def test_without_access_log_only_slow_requests_are_logged(
    settings: Settings, lines: Lines
) -> None:
    quiet = settings.model_copy(update={"access_log": False, "slow_request_seconds": 3600})
    async with serving(quiet) as (_app, client):
        await client.get("/health/live")
    assert lines.of("catalog.access") == []
    slow_only = settings.model_copy(update={"access_log": False, "slow_request_seconds": 1e-9})
    async with serving(slow_only) as (_app, client):
        await client.get("/health/live")
    assert [line["level"] for line in lines.of("catalog.access")] == ["WARNING"]


def test_the_log_format_follows_the_environment_unless_set() -> None:
    def formatter(settings: Settings) -> str:
        return str(logging_config(settings)["formatters"]["catalog"]["()"])

    assert formatter(Settings(environment="development")).endswith("TextFormatter")
    assert formatter(Settings(environment="test")).endswith("TextFormatter")
    production = Settings(environment="production", jwt_secret="s" * 40)  # type: ignore[arg-type]
    assert formatter(production).endswith("JsonLineFormatter")
    assert formatter(Settings(environment="development", log_format="json")).endswith(
        "JsonLineFormatter"
    )
    # Plain data: a server's --log-config file can hold it.
    json.dumps(logging_config(Settings()))


def test_text_lines_carry_the_request_id_and_the_traceback() -> None:
    record = logging.LogRecord("catalog.x", logging.ERROR, "", 0, "failed %s", ("here",), None)
    record.request_id = "abc123"
    assert TextFormatter().format(record).endswith(" ERROR   catalog.x [abc123] failed here")
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    record.request_id = None
    text_line = TextFormatter().format(record)
    assert "[-] failed here\nTraceback" in text_line
    json_line = json.loads(JsonLineFormatter().format(record))
    assert json_line["request_id"] is None
    assert "ValueError: boom" in json_line["exception"]


def test_catalog_serve_writes_json_lines_with_the_proxys_request_id(tmp_path: Path) -> None:
    """A real `catalog serve`: its own lines and the server's are JSON, one access line
    per request carries the id the proxy sent, and uvicorn's access log is off."""
    database = tmp_path / "catalog.db"
    env = {
        "CATALOG_DATABASE_URL": f"sqlite:///{database}",
        "CATALOG_JWT_SECRET_FILE": str(tmp_path / "key"),
        "CATALOG_LOG_FORMAT": "json",
        "CATALOG_FORWARDED_ALLOW_IPS": "127.0.0.1",
    }
    upgrade = subprocess.run(
        [sys.executable, "-m", "catalog", "db", "upgrade"],
        env={**os.environ, **env},
        capture_output=True,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    log = tmp_path / "serve.log"
    with catalog_server(env, log) as server:
        response = httpx.get(f"{server.base_url}/products", headers={"X-Request-ID": "lb-7f3a"})
        assert response.status_code == 200
        assert response.headers["X-Request-ID"] == "lb-7f3a"
    printed = log.read_text().splitlines()
    # Every line, the command's own first ones included, is a JSON record.
    parsed = [json.loads(line) for line in printed if line]
    assert any(line["message"].startswith("catalog on http://") for line in parsed)
    access = [line for line in parsed if line["logger"] == "catalog.access"]
    assert [line["request_id"] for line in access if line["route"] == "/products"] == ["lb-7f3a"]
    assert any(line["logger"] == "uvicorn.error" for line in parsed)
    assert not any(line["logger"] == "uvicorn.access" for line in parsed)
    assert not any('HTTP/1.1" 200' in line for line in printed)  # uvicorn's access format


@pytest.fixture(autouse=True)
def _no_global_logging_change() -> Iterator[None]:
    """The tests configure handlers of their own; nothing here may leave the root logger
    changed for the tests that follow."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    assert root.handlers == handlers
    assert root.level == level


@only_on("sqlite")
async def test_a_database_outage_is_one_line_naming_the_route_not_the_path(
    settings: Settings, lines: Lines
) -> None:
    """The 503's warning names the route's template, never what the client wrote into
    the path (here a form feed that the id's validation accepts), in a single line."""
    quick = settings.model_copy(update={"sqlite_busy_timeout": 0.2})
    async with serving(quick) as (_app, client):
        created = await client.post(
            "/products", json=product_payload(sku=f"LOG-{uuid.uuid4().hex[:12]}")
        )
        product_id = _product_id(created)
        locker = sqlite3.connect(make_url(settings.database_url).database or "", timeout=5)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            response = await client.patch(f"/products/{product_id}%0C", json={"stock": 1})
        finally:
            locker.rollback()
            locker.close()
    assert response.status_code == 503, response.text
    (warning,) = [
        line
        for line in lines.of("catalog.errors")
        if line["request_id"] == response.headers["X-Request-ID"]
    ]
    assert warning["message"].startswith("database unavailable for PATCH /products/{product_id}: ")
    assert "\n" not in warning["message"]
    assert "\x0c" not in warning["message"]
    (access,) = [
        line
        for line in lines.of("catalog.access")
        if line["request_id"] == response.headers["X-Request-ID"]
    ]
    assert access["db_ms"] >= 150  # the lock wait that failed is database time
