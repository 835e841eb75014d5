"""A visitor's account in the browser: sign up, sign in, sign out, my orders.

Each form calls the same services as the API (`POST /users`, `POST /auth/token`, the
orders routes): the same validation, rate limits, password checks off the event loop,
and the same problems, shown as pages.
"""

import re
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from catalog.config import Settings, SettingsDep
from catalog.db.session import ReaderDep, SessionDep
from catalog.errors import ConflictError, UnauthorizedError
from catalog.orders import service as order_service
from catalog.orders.router import OrderId
from catalog.products import service as product_service
from catalog.users import service as user_service
from catalog.users.dependencies import PasswordHasherDep, RateLimitsDep
from catalog.users.models import Role
from catalog.users.schemas import UserCreate
from catalog.web.pages import PageRoute, ShowPage, mistakes, redirect, render
from catalog.web.visitors import (
    CsrfChecked,
    PageUser,
    Visitor,
    VisitorDep,
    csrf_token,
    known_device,
    remember_device,
    sign_in,
    sign_out,
)

__all__ = ["router"]

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# Where a form may send the browser next: one of this service's own pages, never a
# URL elsewhere ("//host" or "/\host" would leave the site).
_NEXT = re.compile(r"/(?![/\\])[A-Za-z0-9/_.?=&%-]{0,200}")
Email = Annotated[str, Form(max_length=254)]
Password = Annotated[str, Form(max_length=1024)]
Next = Annotated[str, Form(max_length=200)]


def _next(value: str) -> str:
    return value if _NEXT.fullmatch(value) else "/"


def _form(request: Request, settings: SettingsDep, **context: Any) -> dict[str, Any]:
    return {"csrf": csrf_token(request, settings), "mistakes": [], **context}


NextPage = Annotated[str, Query(max_length=200)]


def _account_form(
    request: Request, visitor: Visitor, settings: Settings, template: str, next_page: str
) -> Response:
    # A visitor already signed in goes where they were going.
    if visitor.signed_in:
        return redirect(request, _next(next_page))
    context = _form(request, settings, next=_next(next_page), email="")
    return render(request, template, context)


@router.get("/signin", response_class=HTMLResponse)
async def sign_in_page(
    request: Request, visitor: VisitorDep, settings: SettingsDep, next: NextPage = "/"
) -> Response:
    """The sign-in form."""
    return _account_form(request, visitor, settings, "signin.html", next)


@router.post("/signin", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def sign_in_form(
    request: Request,
    reader: ReaderDep,
    hasher: PasswordHasherDep,
    rate_limits: RateLimitsDep,
    settings: SettingsDep,
    email: Email = "",
    password: Password = "",
    next: Next = "/",
) -> Response:
    """Sign in as `POST /auth/token` does, and keep the session in an HttpOnly cookie. A
    browser that signed in to the account before is not slowed down by a flood on it."""
    key = user_service.account_key(email)
    await rate_limits.sign_in(request, key, known_device=known_device(request, key, settings))
    try:
        account = await user_service.verify_credentials(
            reader=reader, hasher=hasher, email=email, password=password
        )
    except UnauthorizedError as error:
        context = _form(request, settings, next=_next(next), email=email, problem=error.detail)
        return render(request, "signin.html", context, status_code=400)
    sign_in(request, account, settings)
    remember_device(request, key, settings)
    return redirect(request, _next(next))


@router.get("/signup", response_class=HTMLResponse)
async def sign_up_page(
    request: Request, visitor: VisitorDep, settings: SettingsDep, next: NextPage = "/"
) -> Response:
    """The sign-up form."""
    return _account_form(request, visitor, settings, "signup.html", next)


_FIELDS = {"email": "Email", "password": "Password"}


@router.post("/signup", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def sign_up_form(
    request: Request,
    session: SessionDep,
    hasher: PasswordHasherDep,
    rate_limits: RateLimitsDep,
    settings: SettingsDep,
    email: Email = "",
    password: Password = "",
    next: Next = "/",
) -> Response:
    """Sign up as `POST /users` does (a customer account), then signed in at once."""
    context = _form(request, settings, next=_next(next), email=email)
    try:
        data = UserCreate(email=email, password=password)
    except pydantic.ValidationError as error:
        context["mistakes"] = mistakes(error, _FIELDS)
        return render(request, "signup.html", context, status_code=422)
    await rate_limits.sign_up(request, data.email)
    try:
        user = await user_service.create(session=session, hasher=hasher, data=data)
    except ConflictError:
        context["problem"] = "There is already an account with this email: sign in instead."
        # Raised, not returned: the session rolls back the failed insert.
        raise ShowPage("signup.html", context, status_code=409) from None
    account = user_service.Account(
        id=user.id, role=Role(user.role), generation=user.session_generation
    )
    sign_in(request, account, settings)
    remember_device(request, user_service.account_key(data.email), settings)
    return redirect(request, _next(next))


@router.get("/signout", response_class=HTMLResponse)
async def sign_out_page(request: Request, visitor: VisitorDep, settings: SettingsDep) -> Response:
    """A button to sign out: signing out changes something, so it is a form (CSRF)."""
    if not visitor.signed_in:
        return redirect(request, "/")
    return render(request, "signout.html", {"csrf": csrf_token(request, settings)})


@router.post("/signout", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def sign_out_form(request: Request, visitor: VisitorDep, session: SessionDep) -> Response:
    """End the account's sessions on the server (a copy of the cookie is signed out
    too, and so are the account's other browsers and tokens), and forget this one."""
    if visitor.user_id is not None:
        await user_service.end_sessions(session=session, user_id=visitor.user_id)
    sign_out(request)
    return redirect(request, "/")


@router.get("/account/orders", response_class=HTMLResponse)
async def my_orders(
    request: Request,
    user: PageUser,
    session: SessionDep,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> Response:
    """The visitor's orders, newest first, as `GET /orders` lists them."""
    page = await order_service.list_orders(
        session=session, user_id=user.id, limit=20, offset=offset
    )
    context = {"page": page, "email": user.email, "staff": user.role == Role.ADMIN}
    return render(request, "orders.html", context)


@router.get("/account/orders/{order_id}", response_class=HTMLResponse)
async def my_order(
    request: Request,
    order_id: OrderId,
    user: PageUser,
    session: SessionDep,
    settings: SettingsDep,
    placed: bool = False,
    cancelled: bool = False,
) -> Response:
    """One of the visitor's orders, with cancel while it is placed."""
    order = await order_service.get(session=session, user_id=user.id, order_id=order_id)
    products = await product_service.read_many(
        source=session, product_ids=[line.product_id for line in order.lines]
    )
    context = {
        "order": order,
        "products": products,
        "placed": placed,
        "cancelled": cancelled,
        "csrf": csrf_token(request, settings),
    }
    return render(request, "order.html", context)


@router.get("/account/orders/{order_id}/cancel", response_class=HTMLResponse)
async def confirm_cancel(
    request: Request, order_id: OrderId, user: PageUser, session: SessionDep, settings: SettingsDep
) -> Response:
    """Ask before cancelling: the order, and the button that cancels it."""
    order = await order_service.get(session=session, user_id=user.id, order_id=order_id)
    context = {"order": order, "csrf": csrf_token(request, settings)}
    return render(request, "cancel.html", context)


@router.post(
    "/account/orders/{order_id}/cancel", response_class=HTMLResponse, dependencies=[CsrfChecked]
)
async def cancel_my_order(
    request: Request, order_id: OrderId, user: PageUser, session: SessionDep
) -> Response:
    """Cancel as `POST /orders/{id}/cancel` does: the stock goes back in the same
    transaction."""
    await order_service.cancel(session=session, user_id=user.id, order_id=order_id)
    return redirect(request, f"/account/orders/{order_id}", {"cancelled": "true"})
