"""Request body size limit, enforced while the body streams in."""

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.errors import handle_error

__all__ = ["BodySizeLimitMiddleware"]


def _mib(size: int) -> str:
    return f"{size / 2**20:.4g} MiB"


class BodySizeLimitMiddleware:
    """Answer 413 to a body over `max_bytes`, declared or streamed, without reading it all."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, larger: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Paths (under the root path) that take more: the staff's import.
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope["path"]).removeprefix(str(scope.get("root_path", "")))
        limit = self.larger.get(path, self.max_bytes)
        detail = f"The request body is larger than the limit of {limit:,} bytes ({_mib(limit)})."
        declared = dict(scope["headers"]).get(b"content-length")
        # Longer than 18 digits is larger than any limit, and int() refuses past 4,300.
        too_long = declared is not None and declared.isdigit() and len(declared) > 18
        if declared is not None and declared.isdigit() and (too_long or int(declared) > limit):
            # Through the one handler: a browser's upload gets the page, a client the problem.
            response = await handle_error(Request(scope), HTTPException(413, detail))
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # A chunked body that grew too large: FastAPI lets HTTPException out of
                # its body parsing, and the error handler renders it as problem+json.
                raise HTTPException(413, detail)
            return message

        await self.app(scope, limited_receive, send)
