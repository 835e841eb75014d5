"""Property-based run over the OpenAPI schema against a real server: no 5xx, responses
match the schema. On SQLite and PostgreSQL."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from catalog.main import create_app
from tests.conftest import TEST_APPLICATION_NAME, migrated_backend
from tests.helpers import backend_params

MAX_EXAMPLES = int(os.environ.get("CATALOG_SCHEMATHESIS_EXAMPLES", "60"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session", params=backend_params("sqlite", "postgresql"))
def api_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real uvicorn server on a migrated database; yields its base URL."""
    backend = migrated_backend(request.param, tmp_path_factory)
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "catalog", "serve", "--port", str(port)],
            env={
                **os.environ,
                "CATALOG_DATABASE_URL": backend.url,
                "CATALOG_APPLICATION_NAME": TEST_APPLICATION_NAME,
            },
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base_url}/health/ready", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()


def _operations() -> list[tuple[str, str]]:
    paths = create_app().openapi()["paths"]
    return [(method.upper(), path) for path, item in paths.items() for method in item]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_api_honours_its_schema(api_server: str, method: str, path: str) -> None:
    operation = schemathesis.openapi.from_url(f"{api_server}/openapi.json")[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def responses_conform(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=api_server)

    responses_conform()
