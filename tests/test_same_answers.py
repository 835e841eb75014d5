"""The same answers on every database: emails in one canonical form, SKUs, categories
and roles compared exactly (MariaDB's default collation ignores case and accents)."""

import httpx
import pytest

from tests.helpers import assert_problem, product_payload

NO_AUTH = {"Authorization": ""}


async def _sign_up(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/users", json={"email": email, "password": password}, headers=NO_AUTH)


async def _token(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(
        "/auth/token", data={"username": email, "password": password}, headers=NO_AUTH
    )


async def _me(client: httpx.AsyncClient, token: httpx.Response) -> str:
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    return str((await client.get("/users/me", headers=headers)).json()["email"])


async def test_accented_and_plain_emails_are_two_accounts(client: httpx.AsyncClient) -> None:
    assert (await _sign_up(client, "renée@example.com", "renée's password")).status_code == 201
    assert (await _sign_up(client, "renee@example.com", "renee's password")).status_code == 201

    # Upper case finds the unaccented account only, and never with the other's password.
    assert_problem(await _token(client, "RENEE@example.com", "renée's password"), 401)
    token = await _token(client, "RENEE@example.com", "renee's password")
    assert token.status_code == 200
    assert await _me(client, token) == "renee@example.com"
    assert await _me(client, await _token(client, "RENÉE@example.com", "renée's password")) == (
        "renée@example.com"
    )


@pytest.mark.parametrize(
    ("signed_up_as", "signs_in_as"),
    [
        ("rene\u0301e@example.com", "ren\u00e9e@example.com"),  # decomposed, then composed
        ("ren\u00e9e@example.com", "rene\u0301e@example.com"),
        ("ｒｅｎｅｅ@example.com", "renee@example.com"),  # fullwidth letters: one address  # noqa: RUF001
    ],
)
async def test_one_address_however_its_characters_are_written(
    client: httpx.AsyncClient, signed_up_as: str, signs_in_as: str
) -> None:
    created = await _sign_up(client, signed_up_as, "correct horse")
    assert created.status_code == 201, created.text
    assert_problem(await _sign_up(client, signs_in_as, "correct horse"), 409)
    token = await _token(client, signs_in_as, "correct horse")
    assert token.status_code == 200, token.text
    assert await _me(client, token) == created.json()["email"]


async def test_skus_that_differ_in_case_are_two_products(client: httpx.AsyncClient) -> None:
    assert (await client.post("/products", json=product_payload("CaseSku-x"))).status_code == 201
    assert (await client.post("/products", json=product_payload("casesku-x"))).status_code == 201
    assert_problem(await client.post("/products", json=product_payload("casesku-x")), 409)


async def test_categories_are_spelled_one_way_and_accents_stay(client: httpx.AsyncClient) -> None:
    for sku, category in (("C-1", "books"), ("C-2", "Books"), ("C-3", "böoks")):
        await client.post("/products", json=product_payload(sku, category=category))

    def count(category: str) -> object:
        return client.get("/products", params={"category": category, "count": "exact"})

    assert (await count("books")).json()["total"] == 2
    assert (await count("BOOKS")).json()["total"] == 2
    assert (await count("boöks")).json()["total"] == 0
    assert (await count("Böoks")).json()["total"] == 1


@pytest.mark.parametrize("category", ["books ", " books", "  books  "])
async def test_spaces_at_either_end_of_a_category_are_trimmed_to_store_and_to_filter(
    client: httpx.AsyncClient, category: str
) -> None:
    created = await client.post("/products", json=product_payload(category=category))
    assert created.status_code == 201, created.text
    assert created.json()["category"] == "books"
    found = await client.get("/products", params={"category": category, "count": "exact"})
    assert found.json()["total"] == 1


@pytest.mark.parametrize("category", ["books\t", "bo\noks", "\t"])
async def test_a_category_with_a_control_character_is_refused_to_store_and_to_filter(
    client: httpx.AsyncClient, category: str
) -> None:
    assert_problem(await client.post("/products", json=product_payload(category=category)), 422)
    assert_problem(await client.get("/products", params={"category": category}), 422)
