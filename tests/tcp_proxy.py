"""A TCP proxy between the app and a database server, to cut the database off in tests."""

import asyncio
import contextlib

from sqlalchemy.engine import make_url


class TcpProxy:
    """Forwards 127.0.0.1:<port> to the server of `url`; `stop()` drops every connection."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.target_host = parsed.host or "127.0.0.1"
        self.target_port = int(
            parsed.port or {"postgresql": 5432}.get(parsed.get_backend_name(), 3306)
        )
        self.url = url
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def proxied_url(self) -> str:
        """`url`, pointing at the proxy."""
        return (
            make_url(self.url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut the open ones, as a database crash would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.update((client_writer, server_writer))
        await asyncio.gather(
            self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._writers.discard(writer)
