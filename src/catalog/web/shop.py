"""The cart and the checkout.

Placing the order is `POST /orders` through the same service: the stock of every line
is taken in one transaction or nothing changes, and the order carries an idempotency
key made when the checkout page was rendered, with the lines that page showed. A double
click, a reload of the form's answer or a second tab sending the same page places one
order, and each of them lands on it.
"""

import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from catalog.config import SettingsDep
from catalog.consistency import ReplicaReaderDep
from catalog.db.session import Reader, SessionDep
from catalog.errors import ConflictError, ValidationError
from catalog.orders import service as order_service
from catalog.orders.schemas import MAX_LINES, MAX_QUANTITY, OrderCreate, OrderLineIn
from catalog.products import service as product_service
from catalog.products.router import ProductId
from catalog.web.cart import Cart, parse, read_cart, save_cart, serialize
from catalog.web.pages import PageRoute, Redirect, error_page, redirect, render
from catalog.web.visitors import CsrfChecked, PageUser, VisitorDep, csrf_token

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# As the API's Idempotency-Key header takes it.
IdempotencyKey = Annotated[str, Form(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


async def _lines(reader: Reader, cart: Cart) -> tuple[list[dict[str, Any]], Decimal]:
    """The cart's lines with what the catalog says of each now, and their total."""
    products = await product_service.read_many(source=reader, product_ids=cart)
    lines, total = [], Decimal("0.00")
    for product_id, quantity in cart.items():
        product = products.get(product_id)
        line: dict[str, Any] = {"product_id": product_id, "quantity": quantity, "product": product}
        if product is not None:
            line["subtotal"] = product.price * quantity
            total += line["subtotal"]
        lines.append(line)
    return lines, total


@router.get("/cart", response_class=HTMLResponse)
async def cart_page(
    request: Request,
    reader: ReplicaReaderDep,
    visitor: VisitorDep,
    settings: SettingsDep,
    added: Annotated[int | None, Query(ge=1)] = None,
    capped: Annotated[int | None, Query(ge=1)] = None,
    updated: bool = False,
) -> Response:
    """What is in the cart, at today's prices, with the stock left of each; one form
    changes every line at once."""
    lines, total = await _lines(reader, read_cart(request))
    context = {
        "lines": lines,
        "total": total,
        "added": added,
        "capped": capped,
        "updated": updated,
        "max_quantity": MAX_QUANTITY,
        "csrf": csrf_token(request, settings),
    }
    return render(request, "cart.html", context)


def _at_most_stock(cart: Cart, products: dict[int, Any]) -> int:
    """Lower each line to the stock left (a line of a product out of stock or gone goes);
    how many lines were lowered or taken out."""
    lowered = 0
    for product_id, quantity in list(cart.items()):
        product = products.get(product_id)
        left = 0 if product is None else min(product.stock, MAX_QUANTITY)
        if quantity > left:
            lowered += 1
            if left:
                cart[product_id] = left
            else:
                del cart[product_id]
    return lowered


@router.post("/cart/update", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def update_cart(request: Request, reader: ReplicaReaderDep) -> Response:
    """Set every line's quantity from the cart's one form (`quantity-<id>`; 0, or the
    line's `remove` box, takes it out), each at most the stock left."""
    form = await request.form()
    cart = read_cart(request)
    for product_id in list(cart):
        if form.get(f"remove-{product_id}"):
            del cart[product_id]
            continue
        text = form.get(f"quantity-{product_id}")
        typed = text.strip() if isinstance(text, str) else ""
        if not typed.isascii() or not typed.isdigit() or len(typed) > 6:
            continue  # left as it was: not sent, not a number, or longer than any quantity
        quantity = min(int(typed), MAX_QUANTITY)
        if quantity == 0:
            del cart[product_id]
        else:
            cart[product_id] = quantity
    products = await product_service.read_many(source=reader, product_ids=cart)
    lowered = _at_most_stock(cart, products)
    save_cart(request, cart)
    note = {"capped": str(lowered)} if lowered else {"updated": "true"}
    return redirect(request, "/cart", note)


@router.post("/cart/fit", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def fit_cart(request: Request, reader: ReplicaReaderDep) -> Response:
    """Order what is left: each line lowered to the stock left, then the checkout again."""
    cart = read_cart(request)
    products = await product_service.read_many(source=reader, product_ids=cart)
    _at_most_stock(cart, products)
    save_cart(request, cart)
    return redirect(request, "/checkout" if cart else "/cart")


@router.post("/cart", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def change_cart(
    request: Request,
    reader: ReplicaReaderDep,
    product_id: Annotated[ProductId, Form()],
    quantity: Annotated[int, Form(ge=0, le=MAX_QUANTITY)] = 1,
    add: Annotated[bool, Form()] = False,
) -> Response:
    """Add `quantity` of a product (`add`), or set its quantity (0 takes it out)."""
    cart = read_cart(request)
    if add:
        product = await product_service.read(reader=reader, product_id=product_id)  # or 404
        # At most the stock left: more could not be ordered.
        quantity = min(cart.get(product_id, 0) + quantity, MAX_QUANTITY, product.stock)
    if quantity == 0:
        cart.pop(product_id, None)
    elif product_id in cart or len(cart) < MAX_LINES:
        cart[product_id] = quantity
    else:
        raise ValidationError(
            f"A cart holds at most {MAX_LINES} products: order these first.",
            errors=[{"loc": ["form", "product_id"], "msg": "cart is full", "type": "cart_full"}],
        )
    save_cart(request, cart)
    if add and quantity == 0:  # sold out since its page was shown
        return redirect(request, "/cart", {"capped": "1"})
    return redirect(request, "/cart", {"added": str(product_id)} if add else None)


@router.get("/checkout", response_class=HTMLResponse)
async def checkout_page(
    request: Request,
    reader: ReplicaReaderDep,
    visitor: VisitorDep,
    settings: SettingsDep,
    short: Annotated[bool, Query()] = False,
) -> Response:
    """The order about to be placed; its form carries a new idempotency key."""
    if not visitor.signed_in:
        raise Redirect("/signin", {"next": "/checkout"})
    cart = read_cart(request)
    if not cart:
        return redirect(request, "/cart")
    lines, total = await _lines(reader, cart)
    context = {
        "lines": lines,
        "total": total,
        "items": serialize(cart),
        # Made now, sent back with the form: the same page sent twice is one order.
        "idempotency_key": uuid.uuid4().hex,
        "short": short,
        "csrf": csrf_token(request, settings),
    }
    return render(request, "checkout.html", context)


async def _outcome_unknown(request: Request, problem: JSONResponse) -> Response:
    """The checkout's problems as pages; a 503 as the page that sends the order again."""
    if problem.status_code != 503:
        return await error_page(request, problem)
    context = {
        **request.state.checkout,
        "csrf": csrf_token(request, request.app.state.settings),
    }
    return render(
        request, "checkout_unknown.html", context, status_code=503, headers={"Retry-After": "1"}
    )


@router.post("/checkout", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def place_order(
    request: Request,
    user: PageUser,
    session: SessionDep,
    idempotency_key: IdempotencyKey,
    items: Annotated[str, Form(max_length=2_000)] = "",
) -> Response:
    """Place the order the checkout page showed (`items`), under its key. When the
    database cannot answer (a 503, here or at the commit), whether the order went
    through is not known: the page says so, and offers to send the same order again,
    which shows the order if it was placed and places it if not, never twice."""
    lines = parse(items)
    if not lines:
        raise Redirect("/cart")
    request.state.checkout = {"idempotency_key": idempotency_key, "items": items}
    request.state.show_problem = _outcome_unknown
    data = OrderCreate(
        items=[OrderLineIn(product_id=key, quantity=value) for key, value in lines.items()]
    )
    try:
        order = await order_service.place(
            session=session, user_id=user.id, data=data, idempotency_key=idempotency_key
        )
    except ConflictError as error:
        if "short_of_stock" not in error.extra:
            raise
        # Back to the checkout, which shows what is left now: nothing was ordered.
        raise Redirect("/checkout", {"short": "true"}) from None
    save_cart(request, {})
    return redirect(request, f"/account/orders/{order.id}", {"placed": "true"})
