"""q: full-text search with each dialect's own index, combined with filters, by relevance."""

from typing import Any

import httpx
import pytest

from tests.helpers import assert_problem, product_payload


@pytest.fixture
async def shelf(client: httpx.AsyncClient) -> dict[str, int]:
    """A few products, some about dinosaurs; name -> id."""
    items = {
        "Dinosaur atlas": "Every dinosaur, and more dinosaurs, drawn to scale.",
        "Field guide": "Birds of the coast, with a chapter on dinosaurs.",
        "Toy boat": "Floats in the bath.",
        "Garden trowel": "Stainless steel, for planting bulbs.",
        "Dinosaurs of the north": "Fossils from cold places.",
    }
    ids = {}
    for index, (name, description) in enumerate(items.items()):
        response = await client.post(
            "/products",
            json=product_payload(
                f"S-{index}", name=name, description=description, category="books"
            ),
        )
        ids[name] = response.json()["id"]
    return ids


async def found(client: httpx.AsyncClient, **params: Any) -> list[int]:
    response = await client.get("/products", params={"limit": 50, **params})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_search_finds_the_word_in_names_and_descriptions_and_nothing_else(
    client: httpx.AsyncClient, shelf: dict[str, int]
) -> None:
    hits = await found(client, q="dinosaur")
    expected = {shelf["Dinosaur atlas"], shelf["Field guide"], shelf["Dinosaurs of the north"]}
    # PostgreSQL and SQLite stem, MariaDB matches the word as a prefix: all find "dinosaurs".
    assert set(hits) == expected
    assert await found(client, q="trowel") == [shelf["Garden trowel"]]
    assert await found(client, q="submarine") == []


async def test_every_word_must_match(client: httpx.AsyncClient, shelf: dict[str, int]) -> None:
    assert await found(client, q="dinosaur fossils") == [shelf["Dinosaurs of the north"]]


async def test_a_minus_excludes_a_word_on_every_database(
    client: httpx.AsyncClient, shelf: dict[str, int]
) -> None:
    # Read as PostgreSQL reads it: before, SQLite and MariaDB required the word instead,
    # and answered exactly the products PostgreSQL left out.
    hits = set(await found(client, q="dinosaur -fossils"))
    assert hits == {shelf["Dinosaur atlas"], shelf["Field guide"]}
    assert set(await found(client, q='dinosaur -"drawn to scale"')) == {
        shelf["Field guide"],
        shelf["Dinosaurs of the north"],
    }


async def test_or_offers_alternatives(client: httpx.AsyncClient, shelf: dict[str, int]) -> None:
    assert set(await found(client, q="trowel or boat")) == {
        shelf["Garden trowel"],
        shelf["Toy boat"],
    }
    assert set(await found(client, q="dinosaur fossils OR bath")) == {
        shelf["Dinosaurs of the north"],
        shelf["Toy boat"],
    }


async def test_a_quoted_phrase_matches_its_words_in_order(
    client: httpx.AsyncClient, shelf: dict[str, int]
) -> None:
    assert await found(client, q='"toy boat"') == [shelf["Toy boat"]]
    assert await found(client, q='"boat toy"') == []


async def test_the_best_match_comes_first(client: httpx.AsyncClient, shelf: dict[str, int]) -> None:
    hits = await found(client, q="dinosaur")
    # Three mentions, one in the name, beat a single one in a description.
    assert hits.index(shelf["Dinosaur atlas"]) < hits.index(shelf["Field guide"])


async def test_search_combines_with_filters_and_other_sorts(
    client: httpx.AsyncClient, shelf: dict[str, int]
) -> None:
    await client.patch(f"/products/{shelf['Field guide']}", json={"stock": 0})
    hits = await found(client, q="dinosaur", in_stock="true", sort="-id")
    assert hits == sorted([shelf["Dinosaur atlas"], shelf["Dinosaurs of the north"]], reverse=True)
    exact = (await client.get("/products", params={"q": "dinosaur", "count": "exact"})).json()
    assert exact["total"] == 3


async def test_search_results_page_by_cursor_once_each(
    client: httpx.AsyncClient, shelf: dict[str, int]
) -> None:
    seen: list[int] = []
    cursor = None
    while True:
        params = {"q": "dinosaur", "limit": 1, **({"cursor": cursor} if cursor else {})}
        body = (await client.get("/products", params=params)).json()
        seen += [item["id"] for item in body["items"]]
        if (cursor := body["next_cursor"]) is None:
            break
    assert seen == await found(client, q="dinosaur")


async def test_the_index_follows_changes(client: httpx.AsyncClient, shelf: dict[str, int]) -> None:
    boat = shelf["Toy boat"]
    await client.patch(f"/products/{boat}", json={"name": "Toy zeppelin"})
    assert await found(client, q="zeppelin") == [boat]
    assert await found(client, q="boat") == []
    await client.delete(f"/products/{boat}")
    assert await found(client, q="zeppelin") == []


@pytest.mark.parametrize(
    "q", ['"dinosaur', "dinosaur -", "+* ( ) OR NOT NEAR", "dino' OR 1=1 --", "***", "ü ß 字"]
)
async def test_any_query_text_is_safe(
    client: httpx.AsyncClient, shelf: dict[str, int], q: str
) -> None:
    response = await client.get("/products", params={"q": q})
    # Found or not, or a query with no word in it to find: never a server error.
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["errors"][0]["type"] == "nothing_to_find"


async def test_relevance_without_a_query_is_422(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/products", params={"sort": "relevance"}), 422)
    assert body["errors"] == [
        {
            "loc": ["query", "sort"],
            "msg": "relevance ranks search results: give q too",
            "type": "needs_q",
        }
    ]
    assert "sort: relevance ranks search results" in body["detail"]


@pytest.mark.parametrize("q", ["-fossils", '-"toy boat"', "-a -b", "!!!", "- -", "or", "-x or -y"])
async def test_a_query_with_nothing_to_find_is_422_on_every_database(
    client: httpx.AsyncClient, shelf: dict[str, int], q: str
) -> None:
    # PostgreSQL answered "-fossils" with every product but one, SQLite and MariaDB with
    # none: refused everywhere instead, with what to do.
    body = assert_problem(await client.get("/products", params={"q": q}), 422)
    assert "no word to find" in body["errors"][0]["msg"]
    assert body["errors"][0]["loc"] == ["query", "q"]


async def test_accents_and_case_do_not_matter_to_search_on_any_database(
    client: httpx.AsyncClient,
) -> None:
    names = {"Crème brûlée set": "For a crème brûlée.", "Creme pot": "Plain cream."}
    ids = {}
    for number, (name, description) in enumerate(names.items()):
        made = await client.post(
            "/products", json=product_payload(f"A-{number}", name=name, description=description)
        )
        ids[name] = made.json()["id"]
    both = {ids["Crème brûlée set"], ids["Creme pot"]}
    for q in ("creme", "crème", "CRÈME", "Creme"):
        assert set(await found(client, q=q)) == both, q
    assert await found(client, q="brulee") == [ids["Crème brûlée set"]]
    # A phrase too, and an exclusion.
    assert await found(client, q='"creme brulee"') == [ids["Crème brûlée set"]]
    assert await found(client, q="creme -brulee") == [ids["Creme pot"]]
