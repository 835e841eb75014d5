"""Location and Link never echo the Host a client sent: relative, or under the public URL."""

import uuid

import httpx
import pytest
from fastapi import FastAPI

from catalog.config import Settings
from tests.helpers import bearer, create_user, only_on, product_payload, serving

HOSTILE = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "gopher",
}


async def _links(client: httpx.AsyncClient, app: FastAPI) -> list[str]:
    """Every link the API hands out: Location of a product, a user, an order; Link."""
    unique = uuid.uuid4().hex[:12]
    created = await client.post("/products", json=product_payload(f"A-{unique}"), headers=HOSTILE)
    await client.post("/products", json=product_payload(f"B-{unique}"), headers=HOSTILE)
    signed_up = await client.post(
        "/users",
        json={"email": f"links-{unique}@example.com", "password": "correct horse"},
        headers={**HOSTILE, "Authorization": ""},
    )
    buyer_id = await create_user(app.state.engine, f"buyer-{unique}@example.com")
    buyer = bearer(buyer_id, app.state.settings)
    ordered = await client.post(
        "/orders",
        json={"items": [{"product_id": created.json()["id"], "quantity": 1}]},
        headers={**HOSTILE, **buyer},
    )
    page = await client.get("/products", params={"limit": 1, "sort": "-price"}, headers=HOSTILE)
    return [
        created.headers["location"],
        signed_up.headers["location"],
        ordered.headers["location"],
        page.headers["link"],
    ]


async def test_links_are_relative_whatever_host_the_client_sends(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    location, me, order, link = await _links(client, app)

    assert location.startswith("/products/")
    assert me == "/users/me"
    assert order.startswith("/orders/")
    assert link.startswith("</products?")
    assert link.endswith('>; rel="next"')
    assert "sort=-price" in link
    assert "cursor=" in link
    # A relative link resolves against the address the client used, which works.
    assert (await client.get(location)).status_code == 200


@only_on("sqlite")
async def test_links_are_absolute_under_the_public_base_url(settings: Settings) -> None:
    configured = settings.model_copy(update={"public_base_url": "https://shop.example"})
    async with serving(configured) as (app, client):
        links = await _links(client, app)
    assert all("evil" not in link for link in links)
    assert links[0].startswith("https://shop.example/products/")
    assert links[1] == "https://shop.example/users/me"
    assert links[3].startswith("<https://shop.example/products?")


@pytest.mark.parametrize("value", ["shop.example", "ftp://shop.example", "https://x?y=1"])
def test_a_public_base_url_must_be_an_http_origin(value: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        Settings(public_base_url=value)


async def test_a_trailing_slash_is_not_found_never_a_redirect_to_the_host_sent(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/products/", "/users/me/", "/orders/", "/auth/token/", "/health/live/"):
        response = await client.get(path, headers=HOSTILE)
        assert response.status_code == 404, path
        assert "location" not in response.headers
