"""The end of the shutdown grace period: requests still running get a 503, not silence.

On SIGTERM the server stops accepting connections and lets in-flight requests finish.
uvicorn, when its own timeout runs out, cancels what is left and exits without sending
those clients anything: they see a connection reset and cannot tell whether their
request was done. Here the service cuts them itself when `CATALOG_SHUTDOWN_GRACE_PERIOD`
runs out, shortly before uvicorn would (`catalog serve` gives uvicorn a second more):
each is cancelled (its transaction rolls back, nothing half-written) and answered 503
with `Retry-After` and `Connection: close`, so the client knows to retry elsewhere.

The service learns that shutdown began from the signal itself: a handler that notes
it and hands the signal on to the server's own (installed by the lifespan, in the main
thread only, and removed when the app stops).
"""

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType

from starlette.types import ASGIApp, Receive, Scope, Send

from catalog.asgi import WatchedSend
from catalog.errors import problem_response

__all__ = ["ShutdownDeadline", "ShutdownDeadlineMiddleware"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownDeadline:
    """The requests in flight, and the cut that ends them when the grace period is over."""

    def __init__(self, grace_period: float) -> None:
        self.grace_period = grace_period
        self._running: set[asyncio.Task[object]] = set()
        self._cut: set[asyncio.Task[object]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def begin(self) -> None:
        """Shutdown has begun: cut whatever still runs in `grace_period` seconds."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.grace_period, self._cut_all)

    def _cut_all(self) -> None:
        for task in self._running:
            self._cut.add(task)
            task.cancel("the shutdown grace period is over")

    def watch_signals(self) -> Callable[[], None]:
        """Begin on SIGTERM or SIGINT, then hand the signal on; returns the undo."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        loop = asyncio.get_running_loop()
        previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}

        def on_signal(sig: int, frame: FrameType | None) -> None:
            loop.call_soon_threadsafe(self.begin)
            handler = previous[signal.Signals(sig)]
            if callable(handler):
                handler(sig, frame)
            elif handler == signal.SIG_DFL:
                signal.signal(sig, signal.SIG_DFL)
                signal.raise_signal(sig)

        for sig in _SIGNALS:
            signal.signal(sig, on_signal)

        def undo() -> None:
            for sig, handler in previous.items():
                if signal.getsignal(sig) is on_signal:
                    signal.signal(sig, handler)

        return undo

    def track(self, task: asyncio.Task[object]) -> None:
        self._running.add(task)

    def untrack(self, task: asyncio.Task[object]) -> bool:
        """Forget `task`; True if it was cut by the deadline."""
        self._running.discard(task)
        if task in self._cut:
            self._cut.discard(task)
            return True
        return False


class ShutdownDeadlineMiddleware:
    """Answers 503 for a request cut by the shutdown deadline, if nothing was sent yet."""

    def __init__(self, app: ASGIApp, deadline: ShutdownDeadline) -> None:
        self.app = app
        self.deadline = deadline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        if scope["type"] != "http" or task is None:
            await self.app(scope, receive, send)
            return
        watched = WatchedSend(send)
        self.deadline.track(task)
        try:
            await self.app(scope, receive, watched)
        except asyncio.CancelledError:
            if not self.deadline.untrack(task) or watched.started:
                raise
            task.uncancel()  # ours: answer instead of dying
            response = problem_response(
                503,
                "shutting-down",
                "The service is shutting down and stopped this request before it finished; "
                "nothing of it was saved. Retry it.",
                headers={"Retry-After": "1", "Connection": "close"},
            )
            await response(scope, receive, send)
        finally:
            self.deadline.untrack(task)
