"""Property-based run over the OpenAPI schema against a real server: no 5xx, responses
match the schema. On SQLite and PostgreSQL."""

import asyncio
import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from catalog.main import create_app
from tests.conftest import IN_CI, TEST_APPLICATION_NAME, Backend, migrated_backend
from tests.helpers import admin_headers, backend_params
from tests.servers import catalog_server

MAX_EXAMPLES = int(os.environ.get("CATALOG_SCHEMATHESIS_EXAMPLES", "60"))


@pytest.fixture(scope="session", params=backend_params("sqlite", "postgresql"))
def api_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """A real uvicorn server on a migrated database; yields its base URL and an admin's
    Authorization header."""
    if request.param == "pgbouncer":
        backend: Backend = request.getfixturevalue("pgbouncer_backend")
    else:
        backend = migrated_backend(request.param, tmp_path_factory)
    env = {
        **backend.env(),
        "CATALOG_APPLICATION_NAME": TEST_APPLICATION_NAME,
        # Closed, as by default: the schema says /health/pool needs its token.
        "CATALOG_METRICS_PUBLIC": "false",
    }
    log = tmp_path_factory.mktemp("server") / "server.log"
    with catalog_server(env, log) as server:
        yield server.base_url, asyncio.run(admin_headers(backend.settings()))
    assert "Traceback" not in server.output(), server.output()


def _operations() -> list[tuple[str, str]]:
    paths = create_app().openapi()["paths"]
    return [(method.upper(), path) for path, item in paths.items() for method in item]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_api_honours_its_schema(
    api_server: tuple[str, dict[str, str]], method: str, path: str
) -> None:
    base_url, headers = api_server
    operation = schemathesis.openapi.from_url(f"{base_url}/openapi.json")[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        # CI explores the same cases every run, so a red run is a regression; local
        # runs draw new cases each time and may find new bugs.
        derandomize=IN_CI,
    )
    def responses_conform(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, headers=headers)

    responses_conform()
