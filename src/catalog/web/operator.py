"""The operators' live page: the pool and the service, from the figures of /metrics,
drawn as charts of the last five minutes that update every second.

The page is for admin accounts, or anyone when `CATALOG_METRICS_PUBLIC=true` says the
port only reaches operators. Its figures come from `GET /operator/figures`, which reads
no database, so the page keeps drawing through an outage and shows the 503s and the
recovery: the page hands its script a short-lived token for that (checking the account
again would need the database that is down).
"""

from typing import Annotated

import jwt
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from catalog.config import SettingsDep
from catalog.db.session import ReaderDep, SessionDep
from catalog.errors import ForbiddenError, UnauthorizedError
from catalog.metrics import FigureHistory, figures
from catalog.users import repository as users
from catalog.users import security
from catalog.users import service as user_service
from catalog.users.models import Role
from catalog.web.pages import PageRoute, Redirect, render
from catalog.web.visitors import VisitorDep

__all__ = ["figure_history", "pages", "router"]

router = APIRouter(prefix="/operator", include_in_schema=False)
pages = APIRouter(prefix="/operator", route_class=PageRoute, include_in_schema=False)

OPERATOR_AUDIENCE = "catalog-operator"
# The figures' own requests (a page polls every second) are left out of the figures.
_OWN_ROUTES = ("/operator",)
_bearer = HTTPBearer(auto_error=False)


@pages.get("", response_class=HTMLResponse)
async def operator_page(
    request: Request, visitor: VisitorDep, settings: SettingsDep, session: SessionDep
) -> Response:
    """The live page; without script, the figures as they are now."""
    token = ""
    if not settings.metrics_public:
        if visitor.user_id is None:
            raise Redirect("/signin", {"next": "/operator"})
        user = await users.get(session, visitor.user_id)
        if user is None or user.role != Role.ADMIN:
            raise ForbiddenError(
                "This page is for operators: an admin account, or CATALOG_METRICS_PUBLIC=true."
            )
        token, _ = security.create_access_token(
            user.id,
            settings,
            audience=OPERATOR_AUDIENCE,
            ttl=settings.browser_session_ttl,
            generation=user.session_generation,
        )
    context = {"now": figures(leave_out=_OWN_ROUTES), "token": token}
    return render(request, "operator.html", context)


async def _may_read_figures(
    settings: SettingsDep,
    reader: ReaderDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    # The token, and then its account: still an admin, still in the session the page
    # was opened in (one indexed read a poll), so that signing out or a demotion stops
    # the figures at once.
    if settings.metrics_public:
        return
    if credentials is None:
        raise UnauthorizedError("This needs the operator page's token.")
    try:
        claims = security.decode_access_token(
            credentials.credentials, settings, audience=OPERATOR_AUDIENCE
        )
    except jwt.InvalidTokenError:
        raise UnauthorizedError(
            "The operator page's token is not valid; reload the page."
        ) from None
    account = await user_service.standing(reader, claims)
    if account is None:
        raise UnauthorizedError("The operator page's account has signed out; sign in again.")
    if account.role != Role.ADMIN:
        raise ForbiddenError("The operator page's account is no longer an admin.")


@router.get("/figures", dependencies=[Depends(_may_read_figures)])
async def operator_figures() -> JSONResponse:
    """The figures the page draws: no database is read."""
    return JSONResponse(figures(leave_out=_OWN_ROUTES), headers={"Cache-Control": "no-store"})


def figure_history() -> FigureHistory:
    """The history that the app's lifespan keeps sampling (catalog.main)."""
    return FigureHistory(leave_out=_OWN_ROUTES)


@router.get("/history", dependencies=[Depends(_may_read_figures)])
async def operator_history(request: Request) -> JSONResponse:
    """The figures of the last five minutes, a sample a second, kept by this worker: the
    page starts its charts from them."""
    history: FigureHistory = request.app.state.figure_history
    return JSONResponse(history.samples(), headers={"Cache-Control": "no-store"})
