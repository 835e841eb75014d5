"""The staff's pages: products edited over the version they show, and imports."""

import csv
import io
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from tests.helpers import product_payload
from tests.web.test_account import _TOKEN, _field, _form, _product, _sign_up

_VERSION = re.compile(r'name="version" value="(\d+)"')


async def test_a_customer_is_refused_the_staff_pages(browser: httpx.AsyncClient) -> None:
    await _sign_up(browser)
    response = await browser.get("/staff/products")
    assert response.status_code == 403
    assert "for the shop&#39;s staff" in response.text


_STAFF_LINK = '<a href="/staff/products">Staff</a>'


async def test_the_header_shows_staff_a_staff_link_and_no_one_else(
    staff: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    assert _STAFF_LINK in (await staff.get("/")).text
    assert _STAFF_LINK not in (await browser.get("/")).text  # a guest
    await _sign_up(browser)
    assert _STAFF_LINK not in (await browser.get("/")).text  # a customer


async def test_a_demoted_member_of_staff_loses_the_link_and_the_pages_at_once(
    staff: httpx.AsyncClient, app: Any
) -> None:
    from sqlalchemy import update

    from catalog.users.models import Role, User

    assert _STAFF_LINK in (await staff.get("/")).text
    async with app.state.engine.begin() as connection:
        await connection.execute(
            update(User).where(User.email == "staff@example.com").values(role=Role.CUSTOMER)
        )
    assert _STAFF_LINK not in (await staff.get("/")).text
    assert (await staff.get("/staff/products")).status_code == 403


async def test_a_guest_is_sent_to_sign_in(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/staff/products")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Fstaff%2Fproducts"


async def test_staff_create_a_product_and_find_it(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    response = await _form(
        staff,
        "/staff/products/new",
        "/staff/products/new",
        sku="DINO-1",
        name="Dinosaur lamp",
        description="Glows.",
        price="24.50",
        stock="7",
        category="",
    )
    assert response.status_code == 303
    product_id = int(response.headers["location"].rsplit("=", 1)[1])
    product = (await client.get(f"/products/{product_id}")).json()
    assert (product["name"], product["price"], product["stock"], product["category"]) == (
        "Dinosaur lamp",
        "24.50",
        7,
        None,
    )
    listed = await staff.get("/staff/products?q=lamp")
    assert f"/staff/products/{product_id}" in listed.text


@pytest.mark.parametrize("stock", ["\u0661\u0662", "\u0967\u0966", "\uff11\uff12"])
async def test_a_stock_in_digits_other_than_ascii_is_refused_on_the_form(
    staff: httpx.AsyncClient, client: httpx.AsyncClient, stock: str
) -> None:
    # Arabic-Indic, Devanagari and full-width "12": the API refuses them, and so does
    # the form (it stored them as 12).
    response = await _form(
        staff,
        "/staff/products/new",
        "/staff/products/new",
        sku="DIGITS-1",
        name="Digit lamp",
        description="",
        price="1.00",
        stock=stock,
        category="",
    )
    assert response.status_code == 422
    assert "Stock must be a whole number" in response.text
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 0


async def test_a_product_form_that_is_not_valid_is_shown_again_as_typed(
    staff: httpx.AsyncClient,
) -> None:
    response = await _form(
        staff,
        "/staff/products/new",
        "/staff/products/new",
        sku="DINO-1",
        name="Dinosaur lamp",
        description="",
        price="24.505",
        stock="-1",
        category="",
    )
    assert response.status_code == 422
    assert 'value="24.505"' in response.text
    # Said in words beside each field, which is marked; the first one takes the focus.
    assert "Price is not a price: write it like 19.99, with at most two decimals." in (
        response.text
    )
    assert "Stock must be 0 or more." in response.text
    assert re.search(
        r'<input id="price"[^>]* aria-invalid="true" aria-describedby="price-error" autofocus>',
        response.text,
    )
    assert re.search(r'<input id="stock"[^>]* aria-invalid="true"[^>]*-error">', response.text)
    assert 'id="price-error"' in response.text
    assert "should match pattern" not in response.text


class _Form(HTMLParser):
    """What a page's product form sends: its hidden fields and text fields as filled,
    its textarea, and for each radio group the value of the radio labelled `choose`."""

    def __init__(self, html: str, choose: dict[str, str]) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self.choose, self._radio, self._textarea = choose, None, None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "input" and found.get("type") == "radio":
            self._radio = found
        elif tag == "input" and "name" in found:
            self.data[found["name"]] = found.get("value", "")
        elif tag == "textarea":
            self._textarea = found["name"]
            self.data[self._textarea] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.data[self._textarea] += data
        elif self._radio is not None and data.strip().startswith(
            f"{self.choose.get(self._radio['name'])}:"
        ):
            self.data[self._radio["name"]] = self._radio["value"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "label":
            self._radio = None


def _sent(html: str, choose: dict[str, str] | None = None, **changes: str) -> dict[str, str]:
    """The form of `html` as a browser sends it, with `changes` typed in: every line
    break as CRLF (the HTML standard's form encoding)."""
    sent = {**_Form(html, choose or {}).data, **changes}
    return {name: re.sub(r"\r?\n", "\r\n", value) for name, value in sent.items()}


async def test_an_edit_of_other_fields_than_those_saved_meanwhile_is_merged_with_them(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    product_id = await _product(client, "BK-1", name="Dinosaur atlas", price="30.00")
    form = await staff.get(f"/staff/products/{product_id}")
    # Another tab (here the API) changes only the price meanwhile.
    assert (await client.patch(f"/products/{product_id}", json={"price": "35.00"})).is_success

    saved = await staff.post(
        f"/staff/products/{product_id}", data=_sent(form.text, name="Dinosaur atlas, 2nd ed.")
    )

    assert saved.status_code == 303, saved.text
    product = (await client.get(f"/products/{product_id}")).json()
    assert (product["name"], product["price"]) == ("Dinosaur atlas, 2nd ed.", "35.00")
    note = await staff.get(saved.headers["location"])
    assert "Someone else had changed its price meanwhile" in note.text


async def test_an_edit_of_a_field_also_saved_meanwhile_asks_whose_value_for_it_alone(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    product_id = await _product(client, "BK-1", name="Dinosaur atlas", price="30.00", stock=5)
    form = await staff.get(f"/staff/products/{product_id}")
    changed = await client.patch(f"/products/{product_id}", json={"price": "35.00", "stock": 9})
    assert changed.is_success

    asked = await staff.post(
        f"/staff/products/{product_id}",
        data=_sent(form.text, name="Dinosaur atlas, 2nd ed.", price="31.00"),
    )

    assert asked.status_code == 412
    assert "You both changed one field" in asked.text
    assert re.findall(r'<tr class="differs">\s*<th scope="row">(\w+)', asked.text) == ["Price"]
    product = (await client.get(f"/products/{product_id}")).json()
    assert (product["name"], product["price"], product["stock"]) == ("Dinosaur atlas", "35.00", 9)

    chosen = await staff.post(
        f"/staff/products/{product_id}", data=_sent(asked.text, {"price": "Yours"})
    )
    assert chosen.status_code == 303, chosen.text
    product = (await client.get(f"/products/{product_id}")).json()
    # Mine where I chose or alone changed it, theirs where they alone changed it.
    assert (product["name"], product["price"], product["stock"]) == (
        "Dinosaur atlas, 2nd ed.",
        "31.00",
        9,
    )


async def test_choosing_theirs_keeps_theirs_and_still_saves_my_other_changes(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    product_id = await _product(client, "BK-1", name="Dinosaur atlas", price="30.00")
    form = await staff.get(f"/staff/products/{product_id}")
    await client.patch(f"/products/{product_id}", json={"price": "35.00"})
    asked = await staff.post(
        f"/staff/products/{product_id}", data=_sent(form.text, price="31.00", category="maps")
    )
    assert asked.status_code == 412

    chosen = await staff.post(
        f"/staff/products/{product_id}", data=_sent(asked.text, {"price": "Theirs"})
    )

    assert chosen.status_code == 303, chosen.text
    product = (await client.get(f"/products/{product_id}")).json()
    assert (product["price"], product["category"]) == ("35.00", "maps")


async def test_a_form_saved_over_an_unchanged_product_writes_only_what_it_changed(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    product_id = await _product(client, "BK-1", description="line one\nline two")
    form = await staff.get(f"/staff/products/{product_id}")

    saved = await staff.post(
        f"/staff/products/{product_id}",
        data=_sent(form.text, stock="3", description="line one\nline 2"),
    )

    # Line breaks sent as CRLF are stored as LF: the opened description, sent back as
    # CRLF, is still the one saved, so no one else changed it.
    assert saved.status_code == 303, saved.text
    product = (await client.get(f"/products/{product_id}")).json()
    assert (product["stock"], product["description"], product["version"]) == (
        3,
        "line one\nline 2",
        2,
    )


async def test_delete_takes_the_version_shown(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    product_id = await _product(client, "BK-1")
    form = await staff.get(f"/staff/products/{product_id}")
    await client.patch(f"/products/{product_id}", json={"stock": 3})
    stale = await staff.post(
        f"/staff/products/{product_id}/delete",
        data={"csrf_token": _field(_TOKEN, form.text), "version": _field(_VERSION, form.text)},
    )
    assert stale.status_code == 412
    assert (await client.get(f"/products/{product_id}")).status_code == 200
    form = await staff.get(f"/staff/products/{product_id}")
    deleted = await staff.post(
        f"/staff/products/{product_id}/delete",
        data={"csrf_token": _field(_TOKEN, form.text), "version": _field(_VERSION, form.text)},
    )
    assert deleted.status_code == 303
    assert (await client.get(f"/products/{product_id}")).status_code == 404


def _csv(*rows: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, ["sku", "name", "description", "price", "stock", "category"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


async def test_an_import_with_one_bad_row_writes_the_others_and_names_the_bad_line(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    good = {k: v for k, v in product_payload("IMP-1").items() if k != "category"}
    body = _csv(good, {**good, "sku": "IMP-2", "price": "-5"}, {**good, "sku": "IMP-3"})
    form = await staff.get("/staff/import")
    response = await staff.post(
        "/staff/import",
        data={"csrf_token": _field(_TOKEN, form.text), "on_error": "skip"},
        files={"file": ("products.csv", body, "text/csv")},
    )
    assert response.status_code == 200
    assert "<progress" in response.text
    assert "3 rows read, 2 products written, 1 row not valid" in response.text
    assert re.search(r"<td[^>]*>3</td><td[^>]*>price: ", response.text), response.text
    found = (await client.get("/products?limit=200")).json()["items"]
    assert {product["sku"] for product in found} >= {"IMP-1", "IMP-3"}
    assert "IMP-2" not in {product["sku"] for product in found}


async def test_an_import_that_aborts_on_a_bad_row_writes_nothing(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    good = {k: v for k, v in product_payload("IMP-1").items() if k != "category"}
    body = _csv(good, {**good, "sku": "IMP-2", "price": "oops"})
    form = await staff.get("/staff/import")
    response = await staff.post(
        "/staff/import",
        data={"csrf_token": _field(_TOKEN, form.text), "on_error": "abort"},
        files={"file": ("products.csv", body, "text/csv")},
    )
    assert "Nothing was imported" in response.text
    assert (await client.get("/products")).json()["items"] == []


async def test_a_file_that_is_neither_csv_nor_ndjson_is_refused(staff: httpx.AsyncClient) -> None:
    form = await staff.get("/staff/import")
    response = await staff.post(
        "/staff/import",
        data={"csrf_token": _field(_TOKEN, form.text)},
        files={"file": ("products.xlsx", b"PK\x03\x04", "application/octet-stream")},
    )
    assert response.status_code == 422
    assert "cannot tell the format" in response.text


async def test_an_upload_from_someone_not_staff_is_refused_before_it_is_read(
    browser: httpx.AsyncClient,
) -> None:
    await _sign_up(browser)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        for _ in range(1000):  # up to 64 MiB, which the refusal never waits for
            sent += 1
            yield b"x" * 65536
        yield b"\r\n--b--\r\n"

    response = await browser.post(
        "/staff/import",
        content=body(),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 403
    assert sent < 5


@pytest.mark.parametrize("q", ["\x00", "a\tb", "\x7f"])
async def test_a_staff_search_with_a_control_character_is_a_422_page(
    staff: httpx.AsyncClient, q: str
) -> None:
    response = await staff.get("/staff/products", params={"q": q})
    assert response.status_code == 422
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "request id" in response.text


async def test_a_file_that_is_not_utf8_is_said_so_with_the_rows_read_before(
    staff: httpx.AsyncClient,
) -> None:
    good = {k: v for k, v in product_payload("IMP-1").items() if k != "category"}
    rows = [{**good, "sku": f"IMP-{n}"} for n in range(1500)]
    body = _csv(*rows) + b"IMP-X,Caf\xe9,,1.00,1,\n"
    form = await staff.get("/staff/import")
    response = await staff.post(
        "/staff/import",
        data={"csrf_token": _field(_TOKEN, form.text), "on_error": "skip"},
        files={"file": ("products.csv", body, "text/csv")},
    )
    assert response.status_code == 200
    assert (
        "The file could not be read to its end (it is not UTF-8 text); "
        "the rows up to row 1000 were imported."
    ) in response.text


def _link(html: str, text: str) -> str:
    """The href of the link whose text is `text`, as a browser would follow it."""
    found = re.search(rf'<a[^>]* href="([^"]+)"[^>]*>{re.escape(text)}', html)
    assert found is not None, html
    return found[1].replace("&amp;", "&")


async def test_delete_asks_first_and_then_goes_back_to_the_same_search(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    product_id = await _product(client, "BK-1", name="Dinosaur atlas", price="30.00")
    await _product(client, "BK-2", name="Dinosaur tales", price="10.00")
    listed = await staff.get("/staff/products", params={"q": "dinosaur", "sort": "-price"})
    edit = await staff.get(_link(listed.text, "Dinosaur atlas"))
    confirm = await staff.get(_link(edit.text, "Delete this product…"))

    # Nothing is deleted by the link: the page asks, the button deletes.
    assert "Delete “Dinosaur atlas”?" in confirm.text
    assert (await client.get(f"/products/{product_id}")).status_code == 200
    deleted = await staff.post(f"/staff/products/{product_id}/delete", data=_sent(confirm.text))

    assert deleted.status_code == 303
    assert deleted.headers["location"] == (
        f"/staff/products?q=dinosaur&sort=-price&deleted={product_id}"
    )
    assert (await client.get(f"/products/{product_id}")).status_code == 404


async def test_a_save_goes_back_to_the_search_order_and_page_it_came_from(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    product_id = await _product(client, "BK-1", name="Dinosaur atlas")
    listed = await staff.get("/staff/products", params={"q": "dinosaur", "sort": "name"})
    form = await staff.get(_link(listed.text, "Dinosaur atlas"))

    saved = await staff.post(f"/staff/products/{product_id}", data=_sent(form.text, stock="1"))

    assert saved.headers["location"] == f"/staff/products?q=dinosaur&sort=name&saved={product_id}"


@pytest.mark.parametrize("back", ["https://elsewhere.example/", "//elsewhere.example/", "/cart"])
async def test_a_save_never_goes_back_to_another_site_or_page(
    staff: httpx.AsyncClient, client: httpx.AsyncClient, back: str
) -> None:
    product_id = await _product(client, "BK-1")
    form = await staff.get(f"/staff/products/{product_id}", params={"back": back})

    saved = await staff.post(f"/staff/products/{product_id}", data=_sent(form.text, stock="1"))

    assert saved.headers["location"] == f"/staff/products?saved={product_id}"


async def test_an_ordered_product_is_not_deleted_and_its_stock_can_be_set_to_0(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    product_id = await _product(client, "BK-1", stock=5)
    order = {"items": [{"product_id": product_id, "quantity": 1}]}
    assert (await client.post("/orders", json=order)).status_code == 201
    confirm = await staff.get(f"/staff/products/{product_id}/delete")

    refused = await staff.post(f"/staff/products/{product_id}/delete", data=_sent(confirm.text))

    assert refused.status_code == 409
    assert "cannot be deleted" in refused.text
    zero = await staff.post(f"/staff/products/{product_id}", data=_sent(refused.text))
    assert zero.status_code == 303, zero.text
    product = (await client.get(f"/products/{product_id}")).json()
    assert (product["stock"], product["name"]) == (0, "Field guide to dinosaurs")


async def test_a_search_for_a_sku_names_its_product_first(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    product_id = await _product(client, "DEMO-0000451", name="Modern chair about oceans")
    await _product(client, "DEMO-0000452", name="Small tent about rivers")

    found = await staff.get("/staff/products", params={"q": "DEMO-0000451"})

    assert re.search(
        rf'SKU <code>DEMO-0000451</code> is <a href="/staff/products/{product_id}\?[^"]*">'
        r"Modern chair about oceans</a>",
        found.text,
    )


async def test_the_list_sorts_by_the_column_heading_chosen(
    staff: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    for sku, price in (("P-1", "20.00"), ("P-2", "5.00"), ("P-3", "12.50")):
        await _product(client, sku, price=price)
    listed = await staff.get("/staff/products")
    by_price = await staff.get(_link(listed.text, "Price"))
    cheapest_last = await staff.get(_link(by_price.text, "Price"))

    assert re.findall(r"<code>(P-\d)</code>", by_price.text) == ["P-2", "P-3", "P-1"]
    assert 'aria-sort="ascending"><a href="/staff/products?sort=-price">Price' in by_price.text
    assert re.findall(r"<code>(P-\d)</code>", cheapest_last.text) == ["P-1", "P-3", "P-2"]
