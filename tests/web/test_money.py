"""Prices on the pages in the shop's currency and locale; a decimal comma where the
locale writes one."""

import httpx
import pytest
from pydantic import ValidationError

from catalog.config import Settings
from tests.conftest import Backend
from tests.helpers import only_on, product_payload
from tests.web.conftest import BROWSER
from tests.web.test_staff import _sent


@pytest.fixture
def settings(backend: Backend) -> Settings:
    return backend.settings(currency="EUR", locale="de_DE")


@only_on("sqlite")
async def test_prices_are_written_in_the_shops_currency_and_locale(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/products", json=product_payload(price="1234.50"))
    product_id = created.json()["id"]

    page = await client.get(f"/product/{product_id}", headers=BROWSER)

    assert '<span class="price">1.234,50\xa0€</span>' in page.text
    # The API's prices stay decimal strings.
    assert (await client.get(f"/products/{product_id}")).json()["price"] == "1234.50"


@only_on("sqlite")
async def test_a_price_typed_with_the_locales_decimal_comma_is_read_as_such(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    created = await client.post("/products", json=product_payload(price="30.00"))
    product_id = created.json()["id"]
    form = await staff.get(f"/staff/products/{product_id}")

    saved = await staff.post(f"/staff/products/{product_id}", data=_sent(form.text, price="19,99"))

    assert saved.status_code == 303, saved.text
    assert (await client.get(f"/products/{product_id}")).json()["price"] == "19.99"
    cheap = await client.get("/search", params={"price_max": "20,5"}, headers=BROWSER)
    assert f"/product/{product_id}" in cheap.text


@pytest.mark.parametrize(("name", "value"), [("currency", "EURO"), ("locale", "xx_NOPE")])
def test_an_unknown_currency_or_locale_is_refused_at_start(name: str, value: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(**{name: value})  # type: ignore[arg-type]
