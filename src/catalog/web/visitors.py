"""Who is looking at a page: the browser's session cookie, and the CSRF token of its forms.

A browser signs in once and then sends an HttpOnly cookie (SameSite=Lax, Secure over
HTTPS) holding a signed token, as the API's bearer token is signed, but for the pages'
audience only: neither is accepted where the other is expected. The token names the
account's session generation; each page a signed-in browser views reads the account's
generation and role (one indexed read on the primary), so that signing out, which adds
one to the generation, ends the session in every browser at once, and the header shows
the Staff link to staff. A guest's pages read nothing. A session lasts
CATALOG_BROWSER_SESSION_TTL without a page view and CATALOG_BROWSER_SESSION_MAX_AGE at
most since its sign-in, however often it is renewed.

Every form that changes something carries a CSRF token: an HMAC, under the service's
signing key, of a random value kept in its own HttpOnly cookie and of the signed-in
user's id. A site elsewhere can neither read that cookie nor compute the HMAC, and a
cookie planted from a sibling domain comes without the matching token for the victim's
account. A form posted with an `Origin` or `Sec-Fetch-Site` naming another site is
refused before its token is even looked at.

Cookies a dependency decides on (a renewed session, a new CSRF value) wait on the
request's state until the page is answered (`pages.finish`): FastAPI drops the headers
of an injected `Response` when a route returns its own.
"""

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Annotated

import jwt
from fastapi import Depends, Form, Request

from catalog.config import Settings, SettingsDep
from catalog.db.session import ReaderDep, SessionDep
from catalog.errors import ForbiddenError
from catalog.users import repository as users
from catalog.users import security
from catalog.users import service as user_service
from catalog.users.models import Role, User
from catalog.users.service import Account
from catalog.web.pages import Redirect

__all__ = [
    "PAGES_AUDIENCE",
    "CsrfChecked",
    "PageUser",
    "Visitor",
    "VisitorDep",
    "check_csrf",
    "csrf_token",
    "known_device",
    "remember_device",
    "set_cookie",
    "sign_in",
    "sign_out",
]

SESSION_COOKIE = "catalog_session"
CSRF_COOKIE = "catalog_csrf"
# A browser that has signed in to an account: its sign-ins to that account are not
# slowed by a flood on the account from elsewhere (OWASP's device cookies).
DEVICE_COOKIE = "catalog_device"
_DEVICE_MAX_AGE = 365 * 86_400
PAGES_AUDIENCE = "catalog-pages"
# What secrets.token_urlsafe(32) makes: anything else in that cookie is not ours.
_CSRF_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class Visitor:
    """The browser's signed-in account (its id), or None for a guest; `staff` when the
    account is staff, as read with its session generation for this request."""

    user_id: int | None
    staff: bool = False

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None


def set_cookie(request: Request, name: str, value: str | None, *, max_age: int | None) -> None:
    """Set (or, with None, delete) a cookie of the pages when the page is answered."""
    pending: dict[str, tuple[str | None, int | None]] | None = getattr(
        request.state, "cookies", None
    )
    if pending is None:
        pending = request.state.cookies = {}
    pending[name] = (value, max_age)


def _session_token(
    request: Request, user_id: int, settings: Settings, *, generation: int, signed_in_at: int
) -> None:
    # Never past the session's absolute lifetime, however late in it the renewal comes.
    left = signed_in_at + settings.browser_session_max_age - int(time.time())
    token, ttl = security.create_access_token(
        user_id,
        settings,
        audience=PAGES_AUDIENCE,
        ttl=max(1, min(settings.browser_session_ttl, left)),
        generation=generation,
        signed_in_at=signed_in_at,
    )
    set_cookie(request, SESSION_COOKIE, token, max_age=ttl)


def sign_in(request: Request, account: Account, settings: Settings) -> None:
    """Sign this browser in to `account`, with a new CSRF value (no form rendered for
    the guest it was is valid for the account)."""
    _session_token(
        request,
        account.id,
        settings,
        generation=account.generation,
        signed_in_at=int(time.time()),
    )
    set_cookie(request, CSRF_COOKIE, secrets.token_urlsafe(32), max_age=None)
    request.state.visitor = Visitor(account.id, account.role == Role.ADMIN)


def sign_out(request: Request) -> None:
    """Forget the session in this browser (users.service.end_sessions ends it on the
    server, and the account's other sessions with it)."""
    set_cookie(request, SESSION_COOKIE, None, max_age=None)
    set_cookie(request, CSRF_COOKIE, None, max_age=None)
    request.state.visitor = Visitor(None)


def _device_value(account: str, settings: Settings) -> str:
    # The account as a digest (no email in a cookie), and the service's MAC of it.
    named = hashlib.sha256(account.encode()).hexdigest()[:32]
    return f"{named}.{_mac(f'device|{named}', None, settings)}"


def known_device(request: Request, account: str, settings: Settings) -> bool:
    """Whether this browser has signed in to `account` (its canonical email) before."""
    value = request.cookies.get(DEVICE_COOKIE, "")
    return hmac.compare_digest(value.encode(), _device_value(account, settings).encode())


def remember_device(request: Request, account: str, settings: Settings) -> None:
    """Mark this browser as one that signed in to `account`, for a year."""
    set_cookie(request, DEVICE_COOKIE, _device_value(account, settings), max_age=_DEVICE_MAX_AGE)


async def _visitor(request: Request, settings: SettingsDep, reader: ReaderDep) -> Visitor:
    token = request.cookies.get(SESSION_COOKIE)
    visitor = Visitor(None)
    if token:
        account = None
        try:
            claims = security.decode_access_token(token, settings, audience=PAGES_AUDIENCE)
        except jwt.InvalidTokenError:
            pass  # expired, or not ours
        else:
            if time.time() - claims.signed_in_at < settings.browser_session_max_age:
                account = await user_service.standing(reader, claims)
        if account is None:  # or signed out, or past its lifetime, or the account is gone
            set_cookie(request, SESSION_COOKIE, None, max_age=None)
        else:
            visitor = Visitor(account.id, account.role == Role.ADMIN)
            if claims.expires_at - time.time() < settings.browser_session_ttl / 2:
                _session_token(
                    request,
                    account.id,
                    settings,
                    generation=claims.generation,
                    signed_in_at=claims.signed_in_at,
                )
    request.state.visitor = visitor
    return visitor


# The visitor of every page (their header shows who is signed in): a guest's costs no
# database, a signed-in browser's one indexed read.
VisitorDep = Annotated[Visitor, Depends(_visitor)]


def _mac(value: str, user_id: int | None, settings: Settings) -> str:
    key = settings.signing_secret.get_secret_value().encode()
    message = f"csrf|{value}|{user_id or ''}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _csrf_value(request: Request) -> str | None:
    pending: tuple[str | None, int | None] | None = getattr(request.state, "cookies", {}).get(
        CSRF_COOKIE
    )
    if pending is not None:
        return pending[0]
    value = request.cookies.get(CSRF_COOKIE, "")
    return value if _CSRF_VALUE.fullmatch(value) else None


def csrf_token(request: Request, settings: Settings) -> str:
    """The token for a form on this page (its cookie is set with the page if missing).
    A page that shows one is personal: pages.finish keeps it out of shared caches."""
    value = _csrf_value(request)
    if value is None:
        value = secrets.token_urlsafe(32)
        set_cookie(request, CSRF_COOKIE, value, max_age=None)
    request.state.personal = True
    visitor: Visitor = getattr(request.state, "visitor", Visitor(None))
    return _mac(value, visitor.user_id, settings)


_EXPIRED = (
    "This form has expired or did not come from this site, so nothing was changed: "
    "go back, reload the page and send it again."
)


def _same_origin(request: Request) -> bool:
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def check_csrf(request: Request, settings: Settings, visitor: Visitor, token: str) -> None:
    """Refuse (403) a form that does not carry this browser's CSRF token, or that came
    from another site."""
    value = _csrf_value(request)
    if (
        not _same_origin(request)
        or value is None
        or not hmac.compare_digest(token.encode(), _mac(value, visitor.user_id, settings).encode())
    ):
        raise ForbiddenError(_EXPIRED)


async def _csrf_checked(
    request: Request,
    settings: SettingsDep,
    visitor: VisitorDep,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> None:
    check_csrf(request, settings, visitor, csrf_token)


# A form's POST: refused with 403 unless it carries this browser's CSRF token.
CsrfChecked = Depends(_csrf_checked)


async def _page_user(request: Request, visitor: VisitorDep, session: SessionDep) -> User:
    # A guest is sent to sign in, and comes back here afterwards.
    here = request.url.path.removeprefix(request.scope.get("root_path", ""))
    if visitor.user_id is not None:
        user = await users.get(session, visitor.user_id)
        if user is not None:
            return user
        sign_out(request)  # the account is gone since the cookie was issued
    raise Redirect("/signin", {"next": here})


# A page of the signed-in visitor's own (orders, checkout): the account, loaded through
# the request's session, as the API's CurrentUser is.
PageUser = Annotated[User, Depends(_page_user)]
