"""HTTP as clients expect it: a 500 keeps the connection usable, HEAD works on GET routes."""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from fastapi import FastAPI

from catalog.config import Settings
from catalog.main import create_app
from tests.helpers import only_on, product_payload, serving
from tests.servers import free_port


@asynccontextmanager
async def uvicorn_serving(app: FastAPI) -> AsyncIterator[int]:
    """`app` behind a real uvicorn (httptools, as `catalog serve` runs it) on a free port."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, port=port, log_level="warning", lifespan="on", http="httptools")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), task
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send one request and read its whole response (headers and Content-Length body)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data  # the server closed the connection
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


@only_on("sqlite")
async def test_the_connection_outlives_a_500(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("a bug, not the database")

    async with uvicorn_serving(app) as port:

        def two_requests() -> tuple[bytes, bytes]:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                get = "GET {} HTTP/1.1\r\nHost: x\r\n\r\n"
                first = _exchange(sock, get.format("/test-only/boom").encode())
                second = _exchange(sock, get.format("/health/live").encode())
                return first, second

        first, second = await asyncio.to_thread(two_requests)

    assert first.startswith(b"HTTP/1.1 500")
    assert b"application/problem+json" in first
    # Kept alive, and the next request on it is answered.
    assert second.startswith(b"HTTP/1.1 200"), second


@only_on("sqlite")
async def test_head_answers_as_get_does_without_a_body(settings: Settings) -> None:
    async with serving(settings) as (app, admin), uvicorn_serving(app) as port:
        product = (await admin.post("/products", json=product_payload("HEAD-1"))).json()
        await admin.post("/products", json=product_payload("HEAD-2"))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for url, params in (
                (f"/products/{product['id']}", {}),
                ("/products", {"limit": 1}),
                ("/health/live", {}),
                ("/products/export", {}),
            ):
                get = await client.get(url, params=params)
                head = await client.head(url, params=params)
                assert head.status_code == get.status_code == 200, url
                assert head.content == b""
                for header in ("content-type", "etag", "link", "content-disposition"):
                    assert head.headers.get(header) == get.headers.get(header), header
            missing = await client.head("/products/999999999")
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
            # HEAD where only POST exists is still 405, naming what is allowed.
            not_allowed = await client.head("/auth/token")
            assert not_allowed.status_code == 405
            assert "POST" in not_allowed.headers["allow"]
            schema = (await client.get("/openapi.json")).json()
            assert not any("head" in item for item in schema["paths"].values())
