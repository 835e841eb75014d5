"""The API's documentation pages, /docs (Swagger UI) and /redoc, served with their
scripts and styles from the service itself, under a strict Content-Security-Policy.

FastAPI's own pages load Swagger UI and ReDoc from a CDN: blank on a machine without
internet access, and a third party's code running with the service's origin. The
assets here are those the `fastapi-offline` package ships (a maintained copy of the
Swagger UI and ReDoc bundles), mounted at ASSETS_PATH; the pages are FastAPI's own
(`get_swagger_ui_html`, `get_redoc_html`). Their one inline script or style is allowed
by its hash, so the policy stays the pages' (catalog.web.pages), except that ReDoc
writes its styles into <style> elements as it renders (styled-components) and runs its
search in a worker made from a blob: those two are allowed on /redoc alone.
"""

import base64
import hashlib
import re
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "install"]

ASSETS_PATH = "/static/api-docs"
DOCS_PATH, REDOC_PATH, OAUTH2_REDIRECT_PATH = "/docs", "/redoc", "/docs/oauth2-redirect"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)
_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def _hashes(html: str, kind: str) -> str:
    """The CSP sources that allow exactly the inline <script> or <style> of `html`."""
    found = []
    for tag, body in _INLINE.findall(html):
        if tag == kind:
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            found.append(f"'sha256-{digest}'")
    return " ".join(found)


def _page(html: HTMLResponse, *, redoc: bool = False) -> HTMLResponse:
    text = bytes(html.body).decode()
    scripts = f"script-src 'self' {_hashes(text, 'script')}".rstrip()
    if redoc:
        styles, worker = "style-src 'self' 'unsafe-inline'", "; worker-src 'self' blob:"
    else:
        styles, worker = f"style-src 'self' {_hashes(text, 'style')}".rstrip(), ""
    headers = {
        "Content-Security-Policy": f"{_POLICY}; {scripts}; {styles}{worker}",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    return HTMLResponse(text, headers=headers)


def install(app: FastAPI, *, swagger_ui_parameters: dict[str, Any]) -> None:
    """Serve /docs, its OAuth2 redirect and /redoc, with their assets; the app must be
    made with `docs_url=None, redoc_url=None` (FastAPI's pages load a CDN's)."""
    assets = StaticFiles(directory=str(files("fastapi_offline") / "static"))
    app.mount(ASSETS_PATH, assets, name="api-docs")

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page(
            get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} · Swagger UI",
                oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_PATH}",
                swagger_js_url=asset(request, "swagger-ui-bundle.js"),
                swagger_css_url=asset(request, "swagger-ui.css"),
                swagger_favicon_url=asset(request, "favicon.png"),
                swagger_ui_parameters=swagger_ui_parameters,
            )
        )

    @app.get(OAUTH2_REDIRECT_PATH, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _page(get_swagger_ui_oauth2_redirect_html())

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _page(
            get_redoc_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} · ReDoc",
                redoc_js_url=asset(request, "redoc.standalone.js"),
                redoc_favicon_url=asset(request, "favicon.png"),
                with_google_fonts=False,
            ),
            redoc=True,
        )
