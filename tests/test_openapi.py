"""The OpenAPI schema that client generators and Swagger users read: operation ids, tags,
descriptions and examples, the OAuth2 password flow, and the problem type pages that
the `type` of every error body points to."""

import ast
import base64
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

import catalog
from catalog import health, problems
from catalog.db.errors import ConstraintKind
from catalog.errors import _HTTP_SLUGS, PROBLEM_MEDIA_TYPE, CatalogError
from catalog.main import create_app
from catalog.orders.router import router as orders_router
from catalog.problems import PROBLEM_TYPES
from catalog.products.router import router as products_router
from catalog.users.router import router as users_router
from tests.helpers import assert_problem, only_on

NO_AUTH = {"Authorization": ""}
SOURCE = Path(catalog.__file__).parent
# Where a route's examples may be missing: health.py documents its answers without
# examples (HealthStatus, PoolSnapshot, its 401 and 503).
WITHOUT_EXAMPLES: set[str] = set()


@cache
def _schema() -> dict[str, Any]:
    return create_app().openapi()


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in _schema()["paths"].items()
        for method, operation in item.items()
    ]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = _schema()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _documented(operation: dict[str, Any]) -> bool:
    return not WITHOUT_EXAMPLES & set(operation.get("tags", []))


def test_operation_ids_are_the_route_function_names() -> None:
    routes = [
        route.name
        for router in (products_router, users_router, orders_router, health.router, problems.router)
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
    ]
    ids = [operation["operationId"] for _, _, operation in _operations()]
    assert sorted(ids) == sorted(routes)
    assert len(ids) == len(set(ids))
    # Generated clients' function names: renaming one breaks every client's code.
    assert {
        "list_products",
        "get_product",
        "create_product",
        "update_product",
        "delete_product",
        "export_products",
        "create_user",
        "issue_token",
        "read_me",
        "place_order",
        "list_orders",
        "get_order",
        "cancel_order",
        "read_problem_type",
    } <= set(ids)


def test_every_tag_in_use_has_a_description() -> None:
    described = {tag["name"]: tag.get("description") for tag in _schema()["tags"]}
    used = {tag for _, _, operation in _operations() for tag in operation["tags"]}
    assert used <= described.keys()
    assert all(described.values())


@pytest.mark.parametrize(("method", "path", "operation"), _operations())
def test_every_parameter_has_a_description_and_an_example(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    parameters = list(operation.get("parameters", []))
    body = operation.get("requestBody", {}).get("content", {})
    if "application/x-www-form-urlencoded" in body:
        form = _resolve(body["application/x-www-form-urlencoded"]["schema"])
        parameters += [
            {"name": name, "schema": field} for name, field in form["properties"].items()
        ]
    for parameter in parameters:
        schema = parameter["schema"]
        description = parameter.get("description") or schema.get("description")
        examples = parameter.get("examples") or schema.get("examples")
        assert description, f"{method} {path}: {parameter['name']} has no description"
        assert examples, f"{method} {path}: {parameter['name']} has no example"


@pytest.mark.parametrize(("method", "path", "operation"), _operations())
def test_request_and_response_bodies_have_examples(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    if not _documented(operation):
        pytest.skip("health.py's answers carry no examples")
    body = operation.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        assert _resolve(body["application/json"]["schema"]).get("examples"), "request body"
    for status, response in operation["responses"].items():
        content = response.get("content", {})
        if status.startswith(("4", "5")):
            assert content[PROBLEM_MEDIA_TYPE].get("examples"), f"{status} has no example"
        elif "application/json" in content:
            assert _resolve(content["application/json"]["schema"]).get("examples"), status


@pytest.mark.parametrize(("method", "path", "operation"), _operations())
def test_each_problem_example_is_a_known_type_with_its_status(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    for status, response in operation["responses"].items():
        examples = response.get("content", {}).get(PROBLEM_MEDIA_TYPE, {}).get("examples", {})
        for slug, example in examples.items():
            value = example["value"]
            assert slug in PROBLEM_TYPES
            assert value["type"] == f"/problems/{slug}"
            assert value["status"] == PROBLEM_TYPES[slug].status == int(status)
            assert value["title"] == HTTPStatus(int(status)).phrase
            assert {"detail", "request_id"} <= value.keys()
            assert ("errors" in value) == (int(status) == 422)


def test_the_authorize_button_uses_the_password_flow_at_a_relative_token_url() -> None:
    schemes = _schema()["components"]["securitySchemes"]
    flow = schemes["OAuth2"]["flows"]["password"]
    # Relative, so that it resolves under a root path (see the test below).
    assert flow["tokenUrl"] == "auth/token"
    secured = {
        operation["operationId"]
        for _, _, operation in _operations()
        if {"OAuth2": []} in operation.get("security", [])
    }
    assert {"read_me", "place_order", "create_product", "get_order"} <= secured
    assert not {"list_products", "get_product", "issue_token", "create_user"} & secured


def _slugs_in(node: ast.AST) -> set[str]:
    return {
        sub.value
        for sub in ast.walk(node)
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str)
    }


def _emitted_slugs() -> set[str]:
    """Every slug the code can put in a problem's type: each CatalogError subclass's, each
    literal passed to problem_response, and the ones errors.py computes (each such
    expression is listed here: a new one fails the test until it is)."""
    violations = {
        f"{kind.value.replace('_', '-')}-violation"
        for kind in ConstraintKind
        if kind is not ConstraintKind.OTHER
    }
    computed = {
        "exc.slug": set(),  # a CatalogError's: the classes are read below
        "slug": {*_HTTP_SLUGS.values(), "http-error"},  # StarletteHTTPException's
        "f\"{violation.kind.value.replace('_', '-')}-violation\"": violations,
    }
    slugs: set[str] = set()
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for statement in node.body:
                    if (
                        isinstance(statement, ast.Assign)
                        and [getattr(t, "id", None) for t in statement.targets] == ["slug"]
                        and isinstance(statement.value, ast.Constant)
                    ):
                        slugs.add(statement.value.value)
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "problem_response"
            ):
                argument = node.args[1] if len(node.args) > 1 else None
                argument = argument or next(k.value for k in node.keywords if k.arg == "slug")
                if isinstance(argument, ast.Constant):
                    slugs.add(argument.value)
                else:
                    expression = ast.unparse(argument)
                    where = f"{path.relative_to(SOURCE)}:{node.lineno}"
                    assert expression in computed, (
                        f"{where} computes a problem slug as {expression}: "
                        "list what it can be in this test"
                    )
                    slugs |= computed[expression]
    return slugs


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def test_every_problem_type_the_code_can_emit_has_a_page_and_no_other() -> None:
    emitted = _emitted_slugs()
    # The scan found the classes that exist once the whole app is imported.
    create_app()
    assert {error.slug for error in (CatalogError, *_subclasses(CatalogError))} <= emitted
    assert emitted - PROBLEM_TYPES.keys() == set(), "add these to catalog.problems.PROBLEM_TYPES"
    assert PROBLEM_TYPES.keys() - emitted == set(), "nothing emits these any more"


def test_every_problem_type_says_what_it_means_and_what_to_do() -> None:
    for slug, problem in PROBLEM_TYPES.items():
        assert all((problem.title, problem.meaning, problem.action, problem.example)), slug


@only_on("sqlite")
async def test_the_type_of_an_error_resolves_to_its_page(client: httpx.AsyncClient) -> None:
    problem = assert_problem(await client.get("/products/999999"), 404)

    page = await client.get(problem["type"])

    assert page.status_code == 200
    assert page.headers["content-type"] == "application/json"
    assert page.headers["vary"] == "Accept"
    body = page.json()
    assert body["type"] == problem["type"]
    assert body["slug"] == "not-found"
    assert body["status"] == 404
    assert body["meaning"]
    assert body["action"]


@only_on("sqlite")
async def test_a_browser_gets_the_problem_page_as_html(client: httpx.AsyncClient) -> None:
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

    page = await client.get("/problems/invalid-cursor", headers={"Accept": browser})

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["vary"] == "Accept"
    assert "<h1>Invalid cursor</h1>" in page.text
    assert "What to do" in page.text


@only_on("sqlite")
@pytest.mark.parametrize("accept", ["*/*", "application/json", "text/html;q=0.5, */*"])
async def test_anything_but_a_browser_gets_json(client: httpx.AsyncClient, accept: str) -> None:
    page = await client.get("/problems/conflict", headers={"Accept": accept})
    assert page.headers["content-type"] == "application/json"
    assert page.json()["status"] == 409


@only_on("sqlite")
async def test_an_unknown_problem_type_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/problems/no-such"), 404)
    assert body["type"] == "/problems/not-found"


@only_on("sqlite")
async def test_a_documented_example_is_what_the_server_answers(client: httpx.AsyncClient) -> None:
    responses = _schema()["paths"]["/products/{product_id}"]["get"]["responses"]
    example = responses["422"]["content"][PROBLEM_MEDIA_TYPE]["examples"]["validation-error"]

    body = assert_problem(await client.get("/products/0"), 422)

    assert {**body, "request_id": None} == {**example["value"], "request_id": None}


@only_on("sqlite")
async def test_docs_and_their_oauth2_redirect_are_served(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200


@only_on("sqlite")
@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        ("", "This needs a bearer token: POST /auth/token to get one."),
        ("Bearer ", "This needs a bearer token: POST /auth/token to get one."),
        ("Basic dTpw", "This needs a bearer token: POST /auth/token to get one."),
        ("Bearer not-a-token", "The access token is not valid."),
    ],
)
async def test_a_missing_or_bad_token_is_still_a_bearer_401(
    client: httpx.AsyncClient, authorization: str, detail: str
) -> None:
    response = await client.get("/users/me", headers={"Authorization": authorization})
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert body["detail"] == detail


@only_on("sqlite")
@pytest.mark.parametrize("client_credentials", ["basic", "request-body"])
async def test_the_authorize_button_signs_in_with_email_and_password(
    client: httpx.AsyncClient, client_credentials: str
) -> None:
    """Swagger UI posts the password grant with an empty client id and secret, in an
    Authorization: Basic header or in the form, as its "client credentials location"
    says; then it sends the token as a bearer."""
    email, password = "swagger@example.com", "correct horse battery"
    signed_up = await client.post(
        "/users", json={"email": email, "password": password}, headers=NO_AUTH
    )
    assert signed_up.status_code == 201
    form = {"grant_type": "password", "username": email, "password": password, "scope": ""}
    headers = dict(NO_AUTH)
    if client_credentials == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(b":").decode()
    else:
        form |= {"client_id": "", "client_secret": ""}
    token_url = urljoin(
        f"{client.base_url}/docs",
        _schema()["components"]["securitySchemes"]["OAuth2"]["flows"]["password"]["tokenUrl"],
    )

    token = await client.post(token_url, data=form, headers=headers)

    assert token.status_code == 200, token.text
    me = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"}
    )
    assert me.json()["email"] == email


@pytest.fixture
async def app_at_a_root_path(app: FastAPI) -> httpx.AsyncClient:
    """The started app of `client`, as a proxy serving it under /api would call it."""
    transport = httpx.ASGITransport(app=app, root_path="/api", raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://catalog.test")


@only_on("sqlite")
async def test_the_token_url_resolves_under_a_root_path(
    app_at_a_root_path: httpx.AsyncClient,
) -> None:
    async with app_at_a_root_path as proxied:
        docs_url = "http://catalog.test/api/docs"
        assert "/api/openapi.json" in (await proxied.get(docs_url)).text
        schema = (await proxied.get("http://catalog.test/api/openapi.json")).json()
        assert schema["servers"] == [{"url": "/api"}]
        token_url = urljoin(
            docs_url,
            schema["components"]["securitySchemes"]["OAuth2"]["flows"]["password"]["tokenUrl"],
        )
        assert token_url == "http://catalog.test/api/auth/token"

        wrong = await proxied.post(token_url, data={"username": "a@example.com", "password": "x"})

        assert_problem(wrong, 401)  # the route, not a 404


def test_the_schema_is_built_once_with_problems_as_problem_json() -> None:
    app = create_app()
    schema = app.openapi()
    assert app.openapi() is schema
    assert PROBLEM_MEDIA_TYPE in schema["paths"]["/products"]["post"]["responses"]["409"]["content"]
