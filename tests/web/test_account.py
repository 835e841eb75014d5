"""Accounts, cart and checkout in the pages: a browser's cookies, CSRF tokens, and the
same services (and rules) as the API underneath."""

import re
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import product_payload
from tests.web.conftest import BROWSER

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
_ITEMS = re.compile(r'name="items" value="([^"]*)"')


def _field(pattern: re.Pattern[str], html: str) -> str:
    found = pattern.search(html)
    assert found is not None, html
    return found[1]


async def _form(
    browser: httpx.AsyncClient, page: str, action: str, **fields: Any
) -> httpx.Response:
    """Open `page`, then send its form to `action` with its CSRF token and `fields`."""
    shown = await browser.get(page)
    assert shown.status_code == 200, shown.text
    token = _field(_TOKEN, shown.text)
    return await browser.post(action, data={"csrf_token": token, **fields})


async def _sign_up(browser: httpx.AsyncClient, email: str = "shopper@example.com") -> None:
    response = await _form(
        browser, "/signup", "/signup", email=email, password="dinosaurs rule", next="/"
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"


async def _product(client: httpx.AsyncClient, sku: str, **fields: Any) -> int:
    response = await client.post("/products", json=product_payload(sku, **fields))
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _stock(client: httpx.AsyncClient, product_id: int) -> int:
    return int((await client.get(f"/products/{product_id}")).json()["stock"])


async def test_sign_up_keeps_the_session_in_an_httponly_samesite_cookie(
    browser: httpx.AsyncClient,
) -> None:
    await _sign_up(browser)
    cookie = next(cookie for cookie in browser.cookies.jar if cookie.name == "catalog_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite") == "lax"
    assert not cookie.secure  # served over plain HTTP here
    orders = await browser.get("/account/orders")
    assert orders.status_code == 200
    assert "Signed in as shopper@example.com" in orders.text
    # A signed-in page is the visitor's own: no shared cache keeps it.
    assert orders.headers["Cache-Control"] == "private, no-store"
    assert "Cookie" in orders.headers["Vary"]


async def test_the_session_cookie_is_secure_over_https(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://catalog.test", headers=BROWSER
    ) as browser:
        shown = await browser.get("/signup")
        assert "secure" in shown.headers["set-cookie"].lower()
        response = await browser.post(
            "/signup",
            data={
                "csrf_token": _field(_TOKEN, shown.text),
                "email": "tls@example.com",
                "password": "dinosaurs rule",
            },
        )
        assert response.status_code == 303
        session = [c for c in response.headers.get_list("set-cookie") if "catalog_session" in c]
        assert session
        assert "secure" in session[0].lower()
        assert "httponly" in session[0].lower()


async def test_a_form_without_its_csrf_token_changes_nothing(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await browser.get("/signup")  # the CSRF cookie is set, but the token is not sent
    response = await browser.post(
        "/signup", data={"email": "forged@example.com", "password": "dinosaurs rule"}
    )
    assert response.status_code == 403
    assert "This form has expired or did not come from this site" in response.text
    signin = await client.post(
        "/auth/token", data={"username": "forged@example.com", "password": "dinosaurs rule"}
    )
    assert signin.status_code == 401


async def test_a_form_posted_from_another_site_is_refused_even_with_a_token(
    browser: httpx.AsyncClient,
) -> None:
    shown = await browser.get("/signup")
    data = {
        "csrf_token": _field(_TOKEN, shown.text),
        "email": "x@example.com",
        "password": "dinosaurs rule",
    }
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        response = await browser.post("/signup", data=data, headers=headers)
        assert response.status_code == 403, headers


async def test_a_token_made_for_a_guest_is_not_valid_once_signed_in(
    browser: httpx.AsyncClient,
) -> None:
    shown = await browser.get("/signup")
    guest_token = _field(_TOKEN, shown.text)
    await _sign_up(browser)
    response = await browser.post("/signout", data={"csrf_token": guest_token})
    assert response.status_code == 403


async def test_the_pages_session_is_no_bearer_token_and_a_bearer_token_is_no_session(
    browser: httpx.AsyncClient, app: FastAPI
) -> None:
    await _sign_up(browser)
    session = browser.cookies["catalog_session"]
    me = await browser.get(
        "/users/me", headers={"Authorization": f"Bearer {session}", "Accept": "application/json"}
    )
    assert me.status_code == 401
    token = await browser.post(
        "/auth/token", data={"username": "shopper@example.com", "password": "dinosaurs rule"}
    )
    browser.cookies.delete("catalog_session")
    browser.cookies.set("catalog_session", token.json()["access_token"])
    orders = await browser.get("/account/orders")
    assert orders.status_code == 303
    assert orders.headers["location"] == "/signin?next=%2Faccount%2Forders"


async def test_sign_in_with_a_wrong_password_shows_the_form_again(
    browser: httpx.AsyncClient,
) -> None:
    await _sign_up(browser)
    await _form(browser, "/signout", "/signout")
    response = await _form(
        browser, "/signin", "/signin", email="shopper@example.com", password="wrong password"
    )
    assert response.status_code == 400
    assert "The email or the password is wrong." in response.text
    assert 'value="shopper@example.com"' in response.text
    # The focus is on the password to type again, which the problem describes.
    assert re.search(
        r'<input id="password"[^>]* aria-describedby="signin-problem" autofocus>', response.text
    )
    response = await _form(
        browser,
        "/signin",
        "/signin",
        email="shopper@example.com",
        password="dinosaurs rule",
        next="/account/orders",
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/account/orders"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
async def test_sign_in_never_sends_the_browser_to_another_site(
    browser: httpx.AsyncClient, target: str
) -> None:
    await _sign_up(browser)
    await _form(browser, "/signout", "/signout")
    response = await _form(
        browser,
        "/signin",
        "/signin",
        email="shopper@example.com",
        password="dinosaurs rule",
        next=target,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_sign_up_with_a_taken_email_says_so_and_creates_nothing(
    browser: httpx.AsyncClient,
) -> None:
    await _sign_up(browser)
    await _form(browser, "/signout", "/signout")
    response = await _form(
        browser, "/signup", "/signup", email="Shopper@example.com", password="other password"
    )
    assert response.status_code == 409
    assert "There is already an account with this email" in response.text
    response = await _form(browser, "/signup", "/signup", email="not an email", password="short")
    assert response.status_code == 422
    assert "Email is not a valid email address" in response.text
    assert "Password is too short: at least 8 characters." in response.text
    assert 'aria-describedby="password-error password-hint"' in response.text


async def test_a_guest_at_the_checkout_is_asked_to_sign_in_first(
    browser: httpx.AsyncClient,
) -> None:
    response = await browser.get("/checkout")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Fcheckout"


async def test_an_order_placed_twice_from_one_checkout_page_is_one_order(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    atlas = await _product(client, "BK-1", name="Dinosaur atlas", price="30.00", stock=5)
    tales = await _product(client, "BK-2", name="Dinosaur tales", price="10.00", stock=5)
    await _sign_up(browser)
    added = await _form(
        browser, f"/product/{atlas}", "/cart", product_id=str(atlas), quantity="2", add="true"
    )
    assert added.status_code == 303
    assert added.headers["location"] == f"/cart?added={atlas}"
    await _form(browser, f"/product/{tales}", "/cart", product_id=str(tales), add="true")
    cart = await browser.get("/cart")
    assert "Dinosaur atlas" in cart.text
    assert "70.00" in cart.text

    checkout = await browser.get("/checkout")
    form = {
        "csrf_token": _field(_TOKEN, checkout.text),
        "idempotency_key": _field(_KEY, checkout.text),
        "items": _field(_ITEMS, checkout.text),
    }
    first = await browser.post("/checkout", data=form)
    again = await browser.post("/checkout", data=form)  # a double click, a reload

    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert re.fullmatch(r"/account/orders/\d+\?placed=true", first.headers["location"])
    assert (await _stock(client, atlas), await _stock(client, tales)) == (3, 4)
    orders = await browser.get("/account/orders")
    assert orders.text.count("/account/orders/") == 1
    assert "catalog_cart" not in browser.cookies  # the cart is emptied

    order = await browser.get(first.headers["location"])
    assert "your order is placed" in order.text
    assert "70.00" in order.text
    assert re.search(r'data-label="Subtotal"><span class="price">\$\d+\.\d\d', order.text)
    # Cancelling asks first: the order page links to the question, whose button cancels.
    order_path = first.headers["location"].split("?")[0]
    assert f'href="{order_path}/cancel">Cancel this order…' in order.text
    asked = await browser.get(f"{order_path}/cancel")
    assert f"Cancel order {order_path.rsplit('/', 1)[1]}?" in asked.text
    assert (await _stock(client, atlas), await _stock(client, tales)) == (3, 4)
    cancelled = await browser.post(
        f"{order_path}/cancel", data={"csrf_token": _field(_TOKEN, asked.text)}
    )
    assert cancelled.status_code == 303
    assert (await _stock(client, atlas), await _stock(client, tales)) == (5, 5)
    shown = await browser.get(cancelled.headers["location"])
    assert "back in stock" in shown.text
    assert "Cancel this order" not in shown.text


async def test_short_stock_orders_nothing_and_the_checkout_names_what_is_left(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    atlas = await _product(client, "BK-1", name="Dinosaur atlas", stock=5)
    tales = await _product(client, "BK-2", name="Dinosaur tales", stock=1)
    await _sign_up(browser)
    await _form(browser, f"/product/{atlas}", "/cart", product_id=str(atlas), add="true")
    await _form(
        browser, f"/product/{tales}", "/cart", product_id=str(tales), quantity="1", add="true"
    )
    checkout = await browser.get("/checkout")
    # Someone else buys the last one meanwhile.
    assert (
        await client.post("/orders", json={"items": [{"product_id": tales, "quantity": 1}]})
    ).status_code == 201

    response = await browser.post(
        "/checkout",
        data={
            "csrf_token": _field(_TOKEN, checkout.text),
            "idempotency_key": _field(_KEY, checkout.text),
            "items": _field(_ITEMS, checkout.text),
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/checkout?short=true"
    assert await _stock(client, atlas) == 5  # the line that had stock took none
    shown = await browser.get(response.headers["location"])
    assert "nothing was ordered" in shown.text
    assert "Only 0 left of Dinosaur tales" in shown.text
    assert (await browser.get("/account/orders")).text.count("/account/orders/") == 0

    # "Order what is left": the sold-out line goes, the checkout shows the rest.
    fitted = await browser.post("/cart/fit", data={"csrf_token": _field(_TOKEN, shown.text)})
    assert fitted.headers["location"] == "/checkout"
    again = await browser.get("/checkout")
    assert "Dinosaur atlas" in again.text
    assert "Dinosaur tales" not in again.text


async def test_one_form_changes_every_line_of_the_cart_each_at_most_its_stock(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    atlas = await _product(client, "BK-1", name="Dinosaur atlas", stock=5)
    tales = await _product(client, "BK-2", name="Dinosaur tales", stock=9)
    diary = await _product(client, "BK-3", name="Dinosaur diary", stock=9)
    for product in (atlas, tales, diary):
        await _form(browser, f"/product/{product}", "/cart", product_id=str(product), add="true")
    cart = await browser.get("/cart")
    assert re.search(r'href="/cart">Cart <span class="count">\(3<', cart.text)  # the header

    updated = await browser.post(
        "/cart/update",
        data={
            "csrf_token": _field(_TOKEN, cart.text),
            f"quantity-{atlas}": "999",  # more than its stock
            f"quantity-{tales}": "4",
            f"quantity-{diary}": "2",
            f"remove-{diary}": "1",
        },
    )

    assert updated.headers["location"] == "/cart?capped=1"
    shown = await browser.get(updated.headers["location"])
    quantities = dict(re.findall(r'name="quantity-(\d+)"[^>]*value="(\d+)"', shown.text))
    assert quantities == {str(atlas): "5", str(tales): "4"}
    assert "One line asked for more than is left" in shown.text
    assert re.search(r'href="/cart">Cart <span class="count">\(9<', shown.text)


async def test_adding_more_than_the_stock_left_adds_the_stock_left(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    atlas = await _product(client, "BK-1", name="Dinosaur atlas", stock=2)
    await _form(
        browser, f"/product/{atlas}", "/cart", product_id=str(atlas), quantity="5", add="true"
    )
    shown = await browser.get("/cart")
    assert re.findall(r'name="quantity-\d+"[^>]*value="(\d+)"', shown.text) == ["2"]


@pytest.mark.parametrize(
    "cookie",
    ["garbage", "1x0", "0x1", "99999999999999999x1", "1x99999", "1x2." * 500, "1x2.1x3"],
)
async def test_a_tampered_cart_cookie_keeps_only_what_reads_as_order_lines(
    browser: httpx.AsyncClient, cookie: str
) -> None:
    browser.cookies.set("catalog_cart", cookie)
    response = await browser.get("/cart")
    assert response.status_code == 200
    lines = len(re.findall(r'name="quantity-\d+" type="number"', response.text))
    assert lines == (1 if cookie.startswith("1x2") else 0)


async def test_a_quantity_longer_than_any_number_leaves_its_line_as_it_was(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    atlas = await _product(client, "BK-1", name="Dinosaur atlas", stock=5)
    await _form(browser, f"/product/{atlas}", "/cart", product_id=str(atlas), add="true")
    cart = await browser.get("/cart")

    updated = await browser.post(
        "/cart/update",
        data={"csrf_token": _field(_TOKEN, cart.text), f"quantity-{atlas}": "9" * 5000},
    )

    assert updated.status_code == 303
    shown = await browser.get(updated.headers["location"])
    assert re.findall(r'name="quantity-\d+"[^>]*value="(\d+)"', shown.text) == ["1"]


async def test_signing_out_ends_a_copied_session_cookie_and_the_accounts_tokens(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    await _sign_up(browser)
    copied = browser.cookies.get("catalog_session")
    assert copied is not None
    token = await client.post(
        "/auth/token", data={"username": "shopper@example.com", "password": "dinosaurs rule"}
    )
    api = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert (await client.get("/users/me", headers=api)).status_code == 200

    await _form(browser, "/signout", "/signout")

    # Someone who copied the cookie before the sign-out is signed out too.
    browser.cookies.set("catalog_session", copied, domain="catalog.test")
    orders = await browser.get("/account/orders")
    assert orders.status_code == 303
    assert orders.headers["location"].startswith("/signin")
    assert "catalog_session=" in orders.headers.get("set-cookie", "")  # and it is dropped
    # And the API's tokens of the account.
    refused = await client.get("/users/me", headers=api)
    assert refused.status_code == 401
    assert "signed out" in refused.json()["detail"]
    # Signing in again starts a new session.
    signed_in = await _form(
        browser, "/signin", "/signin", email="shopper@example.com", password="dinosaurs rule"
    )
    assert signed_in.status_code == 303
    assert (await browser.get("/account/orders")).status_code == 200


async def test_a_session_renewed_by_use_still_ends_at_its_absolute_lifetime(
    browser: httpx.AsyncClient, app: Any
) -> None:
    from catalog.users.security import create_access_token, decode_access_token
    from catalog.web.visitors import PAGES_AUDIENCE

    await _sign_up(browser)
    settings = app.state.settings
    session = decode_access_token(
        browser.cookies["catalog_session"], settings, audience=PAGES_AUDIENCE
    )
    # The same session, signed in longer ago than a session may last: the token itself
    # is fresh, as a renewal would have made it.
    old, _ = create_access_token(
        session.user_id,
        settings,
        audience=PAGES_AUDIENCE,
        ttl=600,
        generation=session.generation,
        signed_in_at=int(time.time()) - settings.browser_session_max_age - 1,
    )
    browser.cookies.set("catalog_session", old, domain="catalog.test")
    assert (await browser.get("/account/orders")).status_code == 303
    # Near its end, a renewal lasts no longer than what is left of it.
    near_end = int(time.time()) - settings.browser_session_max_age + 120
    late, _ = create_access_token(
        session.user_id,
        settings,
        audience=PAGES_AUDIENCE,
        ttl=60,
        generation=session.generation,
        signed_in_at=near_end,
    )
    browser.cookies.set("catalog_session", late, domain="catalog.test")
    assert (await browser.get("/account/orders")).status_code == 200
    renewed = decode_access_token(
        browser.cookies["catalog_session"], settings, audience=PAGES_AUDIENCE
    )
    assert renewed.signed_in_at == near_end
    assert renewed.expires_at <= near_end + settings.browser_session_max_age


async def test_a_browser_that_signed_in_before_is_not_slowed_by_a_flood_on_its_account(
    settings: Any,
) -> None:
    import asyncio
    import uuid

    from tests.helpers import serving

    # serving() does not empty the tables: an account of this test's own.
    email = f"owner-{uuid.uuid4().hex}@example.com"

    flooded = settings.model_copy(
        update={
            "rate_limit_login_per_account": "1/minute",
            "rate_limit_login_slowdown": 2.0,
            "forwarded_allow_ips": "127.0.0.1",
        }
    )
    async with serving(flooded) as (app, api):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://catalog.test", headers=BROWSER
        ) as owner:
            await _sign_up(owner, email)  # the owner's browser: it has signed in to the account
            await _form(owner, "/signout", "/signout")

            def guess(address: str) -> Any:
                return api.post(
                    "/auth/token",
                    data={"username": email, "password": "wrong guess"},
                    headers={"Authorization": "", "X-Forwarded-For": address},
                )

            assert (await guess("203.0.113.1")).status_code == 401  # within the limit
            flood = [asyncio.create_task(guess(f"203.0.113.{n}")) for n in range(2, 5)]
            # The flood queued on the account: the limiter's own state is the event.
            while not app.state.rate_limits._slowed:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            signed_in = await _form(
                owner,
                "/signin",
                "/signin",
                email=email,
                password="dinosaurs rule",
            )
            # In, while the flood still waits its turns of 2 s each.
            still_waiting = sum(not task.done() for task in flood)
            answers = await asyncio.gather(*flood)

    assert signed_in.status_code == 303
    assert still_waiting >= 1
    assert [answer.status_code for answer in answers] == [401] * 3
