"""A Python client generated from the live schema (openapi-python-client) browses and
orders against a real `catalog serve`: a schema that no longer generates, or whose
operations, models or types changed, fails here before it fails a user's client."""

import asyncio
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.conftest import migrated_backend
from tests.helpers import admin_headers
from tests.servers import catalog_server

pytestmark = pytest.mark.sqlite

PACKAGE = "catalog_client"  # from the schema's title, "catalog"
BIN = Path(sys.executable).parent


@dataclass
class Running:
    base_url: str
    admin_token: str


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A real server on a migrated SQLite file, and an admin's access token."""
    backend = migrated_backend("sqlite", tmp_path_factory)
    log = tmp_path_factory.mktemp("server") / "server.log"
    with catalog_server(backend.env(), log) as server:
        headers = asyncio.run(admin_headers(backend.settings()))
        yield Running(server.base_url, headers["Authorization"].removeprefix("Bearer "))
    assert "Traceback" not in server.output(), server.output()


@pytest.fixture(scope="module")
def generated(running: Running, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The client package generated from the server's /openapi.json, importable."""
    where = tmp_path_factory.mktemp("client")
    schema = where / "openapi.json"
    schema.write_bytes(httpx.get(f"{running.base_url}/openapi.json").raise_for_status().content)
    result = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(schema),
            "--meta",
            "none",
            "--output-path",
            str(where / PACKAGE),
        ],
        # Its post-hooks run ruff, which is the venv's.
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # It skips what it cannot type (an endpoint, a model) with a warning, and goes on.
    assert "Warning" not in output, output
    sys.path.insert(0, str(where))
    try:
        yield where / PACKAGE
    finally:
        sys.path.remove(str(where))
        for name in [name for name in sys.modules if name.partition(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def _api(tag: str, operation_id: str) -> Any:
    return _module(f"api.{tag}.{operation_id}")


def _client(running: Running, token: str | None = None) -> Any:
    """A generated client (closed by `with`), signed in with `token` if given."""
    client = _module("client")
    if token is None:
        return client.Client(base_url=running.base_url, raise_on_unexpected_status=True)
    return client.AuthenticatedClient(
        base_url=running.base_url, token=token, raise_on_unexpected_status=True
    )


def test_the_generated_client_browses_and_orders(running: Running, generated: Path) -> None:
    models = _module("models")
    with ExitStack() as clients:
        anyone = clients.enter_context(_client(running))
        admin = clients.enter_context(_client(running, running.admin_token))

        # An admin fills the catalog.
        for n, price in enumerate(["19.99", "5.00"], start=1):
            created = _api("products", "create_product").sync(
                client=admin,
                body=models.ProductCreate(
                    sku=f"GEN-{n}", name=f"Generated {n}", price=price, stock=5, category="gen"
                ),
            )
            assert isinstance(created, models.ProductRead)

        # A customer signs up and gets a token with the password flow.
        email, password = "generated@example.com", "correct horse battery"
        user = _api("users", "create_user").sync(
            client=anyone, body=models.UserCreate(email=email, password=password)
        )
        assert isinstance(user, models.UserRead)
        assert user.role == models.Role.CUSTOMER
        token = _api("users", "issue_token").sync(
            client=anyone, body=models.BodyIssueToken(username=email, password=password)
        )
        assert isinstance(token, models.Token)
        customer = clients.enter_context(_client(running, token.access_token))
        assert _api("users", "read_me").sync(client=customer).email == email

        # Browse: the category, cheapest first, then one product.
        page = _api("products", "list_products").sync(
            client=anyone,
            category="gen",
            sort=models.ProductSort.PRICE,
            count=models.CountMode.EXACT,
        )
        assert isinstance(page, models.ProductPage)
        assert [item.sku for item in page.items] == ["GEN-2", "GEN-1"]
        assert page.total == 2
        chosen = _api("products", "get_product").sync(client=anyone, product_id=page.items[1].id)
        assert isinstance(chosen, models.ProductRead)
        assert chosen.price == "19.99"

        # Order two, and read the order back.
        order = _api("orders", "place_order").sync(
            client=customer,
            body=models.OrderCreate(items=[models.OrderLineIn(product_id=chosen.id, quantity=2)]),
            idempotency_key="generated-client-1",
        )
        assert isinstance(order, models.OrderRead)
        assert order.status == models.OrderStatus.PLACED
        assert Decimal(order.total) == Decimal("39.98")
        again = _api("orders", "get_order").sync(client=customer, order_id=order.id)
        assert isinstance(again, models.OrderRead)
        assert again.to_dict() == order.to_dict()
        mine = _api("orders", "list_orders").sync(client=customer)
        assert [listed.id for listed in mine.items] == [order.id]
        assert _api("products", "get_product").sync(client=anyone, product_id=chosen.id).stock == 3


def test_the_generated_client_reads_problems_and_their_pages(
    running: Running, generated: Path
) -> None:
    models = _module("models")
    with _client(running) as anyone:
        missing = _api("products", "get_product").sync(client=anyone, product_id=2**40)

        assert isinstance(missing, models.Problem)
        assert missing.status == 404
        # `type` is a Python builtin: the generated models call it type_.
        slug = missing.type_.removeprefix("/problems/")
        page = _api("problems", "read_problem_type").sync(client=anyone, slug=slug)
        assert isinstance(page, models.ProblemTypeRead)
        assert page.type_ == missing.type_
        assert page.status == 404
