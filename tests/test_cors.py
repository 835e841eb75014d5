"""CORS from the settings: preflights answered before any route, the allowed origins
told what they may read, the others told nothing, and no CORS at all by default.

CORS never touches the database, so these run on SQLite only."""

import re
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from catalog.config import Settings
from catalog.cors import EXPOSED_HEADERS
from tests.conftest import Backend
from tests.helpers import assert_problem, only_on, product_payload, serving
from tests.test_metrics import sample, scrape

SHOP = "https://shop.example"


def listed(value: str | None) -> list[str]:
    """The members of a comma-separated header, lower-cased."""
    return [member.strip().lower() for member in (value or "").split(",") if member.strip()]


@pytest.fixture
async def shop(backend: Backend) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app that lets a front end on SHOP (and a local one) call it."""
    settings = backend.settings(cors_allow_origins=f"{SHOP}, http://localhost:5173")
    async with serving(settings) as served:
        yield served


def preflight(method: str, *headers: str, origin: str = SHOP) -> dict[str, str]:
    request = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request["Access-Control-Request-Headers"] = ", ".join(headers)
    return request


@only_on("sqlite")
async def test_a_preflight_from_an_allowed_origin_is_200_with_what_it_may_do(
    shop: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = shop
    response = await client.options(
        "/products/1",
        headers=preflight("PATCH", "authorization", "content-type", "if-match"),
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    assert "patch" in listed(response.headers["access-control-allow-methods"])
    allowed = listed(response.headers["access-control-allow-headers"])
    assert {"authorization", "content-type", "if-match", "if-none-match"} <= set(allowed)
    assert response.headers["access-control-max-age"] == "600"
    # Bearer tokens, not cookies: the browser is never told to send credentials.
    assert "access-control-allow-credentials" not in response.headers
    assert "origin" in listed(response.headers["vary"])
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


@only_on("sqlite")
async def test_every_route_answers_a_preflight_with_200(
    shop: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    # Every operation the schema documents, whatever its path parameters say.
    app, client = shop
    operations = [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, item in app.openapi()["paths"].items()
        for method in item
    ]
    assert len(operations) > 15
    for method, path in operations:
        response = await client.options(path, headers=preflight(method, "authorization"))
        assert response.status_code == 200, (method, path, response.text)
        assert response.headers["access-control-allow-origin"] == SHOP


def _options_counted(exposition: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("catalog_http_requests_total{") and 'method="OPTIONS"' in line
    )


@only_on("sqlite")
async def test_a_preflight_is_not_counted_in_the_metrics(
    shop: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    # Answered from configuration before the metrics middleware (catalog/cors.py says why).
    _, client = shop
    before = await scrape(client)

    await client.options("/products", headers=preflight("POST", "content-type"))

    after = await scrape(client)
    # The metrics are the process's: other tests' OPTIONS (405s) may be there already.
    assert _options_counted(after) == _options_counted(before)
    get = {"method": "GET", "route": "/metrics", "status": "200"}
    counted = "catalog_http_requests_total"
    assert sample(after, counted, **get) - sample(before, counted, **get) == 1


@only_on("sqlite")
async def test_a_request_from_an_allowed_origin_may_read_the_headers_it_needs(
    shop: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = shop
    product = (await client.post("/products", json=product_payload(uuid4().hex))).json()

    response = await client.get(f"/products/{product['id']}", headers={"Origin": SHOP})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SHOP
    exposed = listed(response.headers["access-control-expose-headers"])
    assert [name.lower() for name in EXPOSED_HEADERS] == exposed
    assert {"etag", "link", "location", "retry-after", "x-request-id"} <= set(exposed)
    assert "access-control-allow-credentials" not in response.headers


@only_on("sqlite")
async def test_a_disallowed_origin_is_told_nothing(
    shop: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = shop
    elsewhere = "https://evil.example"

    read = await client.get("/products", headers={"Origin": elsewhere})
    asked = await client.options("/products", headers=preflight("POST", origin=elsewhere))

    # The request itself is served (CORS is the browser's to enforce), without the
    # header that would let the page read it (Starlette sends Expose-Headers to any
    # Origin; without Allow-Origin it opens nothing).
    assert read.status_code == 200
    assert "access-control-allow-origin" not in read.headers
    # The preflight is refused as any bad request is: a problem with its request id
    # (the browser treats it as any failed preflight).
    problem = assert_problem(asked, 400)
    assert problem["type"] == "/problems/bad-request"
    assert problem["detail"].startswith("The CORS preflight is refused; not allowed here: origin ")
    assert problem["request_id"] == asked.headers["X-Request-ID"]
    assert asked.headers["cache-control"] == "no-store"
    assert "access-control-allow-origin" not in asked.headers


@only_on("sqlite")
async def test_a_preflight_for_a_header_not_allowed_is_refused(
    shop: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = shop

    response = await client.options("/products", headers=preflight("POST", "x-secret"))

    problem = assert_problem(response, 400)
    assert "not allowed here: headers " in problem["detail"]


@only_on("sqlite")
async def test_every_response_varies_on_origin_when_origins_are_configured(
    shop: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    # A shared cache that stored the answer to a request without Origin (no
    # Access-Control-Allow-Origin) must not hand it to a browser on SHOP.
    _, client = shop
    product = (await client.post("/products", json=product_payload(uuid4().hex))).json()
    url = f"/products/{product['id']}"

    responses = [
        await client.get(url),
        await client.get(url, headers={"Origin": SHOP}),
        await client.get(url, headers={"Origin": "https://evil.example"}),
        await client.get(url, headers={"Origin": SHOP, "If-None-Match": '"1"'}),
        await client.get("/products/987654", headers={"Origin": SHOP}),
    ]

    assert [response.status_code for response in responses] == [200, 200, 200, 304, 404]
    for response in responses:
        assert "origin" in listed(response.headers.get("vary")), response.headers


@only_on("sqlite")
async def test_a_private_response_varies_on_authorization_and_origin(
    shop: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = shop

    response = await client.get("/users/me", headers={"Origin": SHOP})

    assert response.status_code == 200
    assert listed(response.headers["vary"]) == ["authorization", "origin"]
    assert response.headers["access-control-allow-origin"] == SHOP


@only_on("sqlite")
async def test_any_origin_with_a_star(backend: Backend) -> None:
    async with serving(backend.settings(cors_allow_origins="*")) as (_, client):
        read = await client.get("/products", headers={"Origin": "https://any.example"})
        asked = await client.options(
            "/products", headers=preflight("POST", "content-type", origin="https://any.example")
        )

    assert read.headers["access-control-allow-origin"] == "*"
    assert asked.status_code == 200
    assert asked.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in asked.headers


@only_on("sqlite")
async def test_no_cors_headers_at_all_by_default(client: httpx.AsyncClient) -> None:
    read = await client.get("/products", headers={"Origin": SHOP})
    asked = await client.options("/products", headers=preflight("GET"))

    for response in (read, asked):
        assert not [name for name in response.headers if name.startswith("access-control-")]
        assert "origin" not in listed(response.headers.get("vary"))
    # Without CORS, OPTIONS is a method no route takes.
    assert asked.status_code == 405


@pytest.mark.parametrize(
    ("given", "allowed"),
    [
        ("", []),
        ("https://shop.example", ["https://shop.example"]),
        (" HTTPS://Shop.Example:443 ,http://localhost:5173,", [SHOP, "http://localhost:5173"]),
        ("http://[::1]:80, http://127.0.0.1:8080", ["http://[::1]", "http://127.0.0.1:8080"]),
        ("*", ["*"]),
    ],
)
def test_origins_are_read_as_a_browser_writes_them(given: str, allowed: list[str]) -> None:
    assert Settings(cors_allow_origins=given).cors_origins == allowed


@pytest.mark.parametrize(
    "given",
    [
        "https://shop.example/",
        "https://shop.example/app",
        "shop.example",
        "localhost:5173",
        "https://user@shop.example",
        "https://shop.example:99999",
        "https://shop.example?x=1",
        "*, https://shop.example",
    ],
)
def test_an_entry_that_is_not_an_origin_is_refused(given: str) -> None:
    with pytest.raises(ValidationError, match=r"not an origin|allows every origin"):
        Settings(cors_allow_origins=given)


def test_methods_and_headers_are_lists() -> None:
    settings = Settings(cors_allow_methods="get, POST", cors_allow_headers="Authorization, X-A")

    assert settings.cors_methods == ["GET", "POST"]
    assert settings.cors_headers == ["Authorization", "X-A"]
