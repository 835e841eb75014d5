"""The cart: what a visitor means to buy, kept in their browser (a cookie), not on the
server, so that a guest can fill one before signing up and nothing is left behind.

The cookie holds only product ids and quantities (`12x2.45x1`); names, prices and stock
are read from the catalog each time the cart is shown, and the order takes its prices
from the catalog, never from here. A cookie that was tampered with loses what cannot be
read, never more: each line is checked as an order line is.
"""

import re

from fastapi import Request

from catalog.orders.schemas import MAX_LINES, MAX_PRODUCT_REF, MAX_QUANTITY
from catalog.web.pages import frame_value
from catalog.web.visitors import set_cookie

__all__ = ["CART_COOKIE", "Cart", "count", "read_cart", "save_cart"]

CART_COOKIE = "catalog_cart"
_LINE = re.compile(r"([1-9][0-9]{0,15})x([1-9][0-9]{0,4})")
# A cart outlives a browser restart: kept for 30 days after its last change.
_KEPT_FOR = 30 * 86_400

# Product id to quantity, in the order the products were added.
Cart = dict[int, int]


def parse(value: str) -> Cart:
    """The cart a cookie's value holds: each readable line (a valid product id and
    quantity), at most MAX_LINES of them; a product's first line counts."""
    cart: Cart = {}
    for part in value.split(".")[:MAX_LINES]:
        line = _LINE.fullmatch(part)
        if line is None:
            continue
        product_id, quantity = int(line[1]), int(line[2])
        if product_id <= MAX_PRODUCT_REF and quantity <= MAX_QUANTITY:
            cart.setdefault(product_id, quantity)
    return cart


def serialize(cart: Cart) -> str:
    return ".".join(f"{product_id}x{quantity}" for product_id, quantity in cart.items())


def read_cart(request: Request) -> Cart:
    """This browser's cart: as this request leaves it, if it changed it."""
    pending: dict[str, tuple[str | None, int | None]] = getattr(request.state, "cookies", {})
    if CART_COOKIE in pending:
        return parse(pending[CART_COOKIE][0] or "")
    return parse(request.cookies.get(CART_COOKIE, ""))


@frame_value("cart_count")
def count(request: Request) -> int:
    """How many items the cart holds, for the header of every page."""
    return sum(read_cart(request).values())


def save_cart(request: Request, cart: Cart) -> None:
    """Keep `cart` in this browser (an empty cart deletes the cookie)."""
    value = serialize(cart)
    set_cookie(request, CART_COOKIE, value or None, max_age=_KEPT_FOR)
