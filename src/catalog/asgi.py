"""What the service's ASGI middlewares share."""

from starlette.types import Message, Send

__all__ = ["WatchedSend"]


class WatchedSend:
    """An ASGI `send` that notes the response's status once its start has gone out:
    until then a middleware may still answer in the app's place."""

    __slots__ = ("_send", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status: int | None = None

    @property
    def started(self) -> bool:
        return self.status is not None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)
