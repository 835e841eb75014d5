"""HTTP caching on every backend: conditional GETs (If-None-Match, 304), Cache-Control
of public reads from the settings, and responses that depend on who asks kept private."""

from uuid import uuid4

import httpx
import pytest

from catalog.config import Settings
from tests.conftest import Backend
from tests.helpers import assert_problem, product_payload, serving

DEFAULT_PUBLIC = "public, max-age=0, must-revalidate"


@pytest.fixture
async def product(client: httpx.AsyncClient) -> dict[str, object]:
    """A product at version 2 (changed once), so that `"1"` is a stale tag."""
    created = await client.post("/products", json=product_payload())
    assert created.status_code == 201, created.text
    changed = await client.patch(f"/products/{created.json()['id']}", json={"stock": 5})
    assert changed.headers["etag"] == '"2"'
    return changed.json()  # type: ignore[no-any-return]


async def conditional_get(
    client: httpx.AsyncClient, product: dict[str, object], if_none_match: str
) -> httpx.Response:
    return await client.get(f"/products/{product['id']}", headers={"If-None-Match": if_none_match})


async def test_a_matching_tag_is_answered_304_with_the_etag_and_no_body(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    response = await conditional_get(client, product, '"2"')

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == '"2"'
    assert response.headers["cache-control"] == DEFAULT_PUBLIC
    assert "content-type" not in response.headers
    assert "content-length" not in response.headers


async def test_a_304_carries_the_caching_headers_of_the_200(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    full = await client.get(f"/products/{product['id']}")
    not_modified = await conditional_get(client, product, full.headers["etag"])

    assert not_modified.status_code == 304
    for name in ("etag", "cache-control", "vary"):
        assert not_modified.headers.get(name) == full.headers.get(name), name


async def test_a_weak_tag_matches_as_if_none_match_compares_weakly(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    assert (await conditional_get(client, product, 'W/"2"')).status_code == 304


async def test_a_list_matches_when_one_of_its_tags_does(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    assert (await conditional_get(client, product, '"1", W/"7",  "2"')).status_code == 304
    assert (await conditional_get(client, product, '"1","2"')).status_code == 304


async def test_star_matches_any_current_version(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    assert (await conditional_get(client, product, "*")).status_code == 304


async def test_star_on_an_unknown_product_is_still_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/products/987654", headers={"If-None-Match": "*"})

    assert_problem(response, 404)


async def test_a_stale_tag_gets_the_current_product(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    response = await conditional_get(client, product, '"1"')

    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'
    assert response.json() == product


async def test_malformed_tags_match_nothing(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    # Unquoted, a space inside W/, junk around the quotes, and a tag that is not ours.
    for value in ("2", 'W/ "2"', 'x"2"', '"2"x', '"02"', ""):
        response = await conditional_get(client, product, value)
        assert response.status_code == 200, value


async def test_a_change_makes_the_old_tag_stale(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    # The 304 path reads the product every time: a copy is not trusted past a change.
    assert (await conditional_get(client, product, '"2"')).status_code == 304
    await client.patch(f"/products/{product['id']}", json={"stock": 6})

    response = await conditional_get(client, product, '"2"')

    assert response.status_code == 200
    assert response.json()["stock"] == 6


async def test_head_with_a_matching_tag_is_304(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    url = f"/products/{product['id']}"
    matching = await client.head(url, headers={"If-None-Match": '"2"'})
    stale = await client.head(url, headers={"If-None-Match": '"1"'})

    assert matching.status_code == 304
    assert matching.headers["etag"] == '"2"'
    assert matching.content == b""
    assert stale.status_code == 200
    assert stale.content == b""


async def test_if_match_still_compares_strongly(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    # One parser reads both headers; If-Match must not take the weak form.
    url = f"/products/{product['id']}"
    weak = await client.patch(url, json={"stock": 1}, headers={"If-Match": 'W/"2"'})
    listed = await client.patch(url, json={"stock": 1}, headers={"If-Match": '"1", "2"'})

    assert_problem(weak, 412)
    assert listed.status_code == 200


async def test_public_reads_carry_the_default_cache_control(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    for url in (f"/products/{product['id']}", "/products", "/products/export"):
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == DEFAULT_PUBLIC, url


async def test_cache_control_of_public_reads_follows_the_setting(backend: Backend) -> None:
    settings = backend.settings(public_cache_control="public, max-age=60, s-maxage=300")
    async with serving(settings) as (_, client):
        # An app of its own on the backend's database, which no fixture empties for it.
        created = (await client.post("/products", json=product_payload(uuid4().hex))).json()
        url = f"/products/{created['id']}"
        responses = [
            await client.get(url),
            await client.get(url, headers={"If-None-Match": '"1"'}),
            await client.head(url),
            await client.get("/products"),
            await client.get("/products/export?format=csv"),
        ]

    assert [response.status_code for response in responses] == [200, 304, 200, 200, 200]
    for response in responses:
        assert response.headers["cache-control"] == "public, max-age=60, s-maxage=300"


@pytest.mark.parametrize("path", ["/users/me", "/orders"])
async def test_what_a_signed_in_user_is_answered_is_stored_by_no_cache(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "Authorization" in [value.strip() for value in response.headers["vary"].split(",")]


async def test_an_order_is_private_from_placing_it_to_reading_it(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    placed = await client.post(
        "/orders", json={"items": [{"product_id": product["id"], "quantity": 1}]}
    )
    read = await client.get(placed.headers["location"])

    for response in (placed, read):
        assert response.status_code in (200, 201), response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["vary"] == "Authorization"


async def test_public_reads_do_not_vary_on_authorization(
    client: httpx.AsyncClient, product: dict[str, object]
) -> None:
    # Sent with a token (the client's), they are the same for anyone: a shared cache
    # may keep them, so they must not say they depend on it.
    response = await client.get(f"/products/{product['id']}")

    assert "authorization" not in response.headers.get("vary", "").lower()


async def test_problems_are_never_cached_as_public(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # Even on a public read: a 404 kept by a CDN would hide the product once created.
    responses = [
        await client.get("/products/987654"),
        await client.get("/products/987654", headers={"If-None-Match": '"1"'}),
        await client.get("/products?cursor=forged"),
        await client.get("/users/me", headers={"Authorization": "Bearer not-a-token"}),
    ]

    assert [response.status_code for response in responses] == [404, 404, 400, 401]
    for response in responses:
        assert "public" not in response.headers.get("cache-control", ""), response.url
        assert response.headers["cache-control"] == "no-store", response.url


async def test_an_access_token_is_stored_by_no_cache(client: httpx.AsyncClient) -> None:
    # RFC 6749 section 5.1: the token endpoint answers Cache-Control: no-store.
    account = {"email": f"cache-{uuid4().hex[:8]}@example.com", "password": "Hunter2-Hunter2"}
    assert (await client.post("/users", json=account)).status_code == 201
    response = await client.post(
        "/auth/token", data={"username": account["email"], "password": account["password"]}
    )

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
