"""HEAD on every GET route (RFC 9110 section 9.3.2), which FastAPI's routes do not answer.

The request runs as the GET it mirrors, so the status and headers (ETag, Link,
Content-Type, Content-Length) are the GET's own, and the body is dropped on the way out.
A middleware rather than HEAD added to each route: FastAPI would then list every HEAD
in the OpenAPI schema under the GET's operation id; this costs other requests one
comparison. Outermost, so that the metrics count a HEAD as the GET it mirrors.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HeadAsGetMiddleware"]


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # A copy: the server's own scope must still say HEAD, so that it sends no body.
        await self.app({**scope, "method": "GET"}, receive, send_without_body)
