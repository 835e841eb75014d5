"""Count database round trips: a TCP proxy that sees every exchange between app and server.

A round trip is the server answering after the client has spoken, however the bytes
were split into packets. The proxy runs its own event loop in a thread, so it can sit
in front of any server process (uvicorn workers, a sync app) without sharing a loop.
"""

import asyncio
import threading
from typing import Self


class RoundTripCounter:
    """Forwards 127.0.0.1:<port> to host:port, counting round trips on every connection."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.round_trips = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> Self:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *_: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def take(self) -> int:
        """Round trips since the last call."""
        with self._lock:
            count, self.round_trips = self.round_trips, 0
        return count

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._connection, "127.0.0.1", 0)

    async def _connection(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        client_spoke = [False]

        async def pipe(
            reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_client: bool
        ) -> None:
            try:
                while data := await reader.read(65536):
                    if from_client:
                        client_spoke[0] = True
                    elif client_spoke[0]:
                        client_spoke[0] = False
                        with self._lock:
                            self.round_trips += 1
                    writer.write(data)
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

        await asyncio.gather(
            pipe(client_reader, server_writer, True), pipe(server_reader, client_writer, False)
        )
