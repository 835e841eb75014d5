"""uvicorn against Granian, each serving catalog as `catalog serve` would (issue 17).

    python bench/servers.py [--products 10000] [--workers 1 2] [--rounds 5] [--seconds 5]
                            [--connections 64] [--scenarios one page]
    python bench/servers.py --check [--slow-clients 0 1000 4000]
    ... [--granian-backpressure N]   Granian's connection bound (default: its own)

Both servers run the same app (`catalog.main:served_app`, a factory) on the same
throwaway SQLite database with --products demo products, with the same worker count,
every worker told the count and several sharing one Prometheus directory, and neither
writing an access log (the server's is off, and so is the app's: CATALOG_ACCESS_LOG).
uvicorn gets `catalog serve`'s own arguments (httptools and uvloop, no Server header, no
proxy headers, the graceful timeout a second past the app's deadline); Granian the same
where it has them (ASGI with lifespan, uvloop, access log off, its workers killed a
second past the app's deadline).

The load: for each worker count, both servers are up at once and each round runs every
scenario with wrk on one server, then on the other (the order alternating by round), so
that a ratio compares two servers at the same moment of a machine whose speed drifts.
Scenarios are the speed suite's (bench/suite.py): `one` is `GET /products/{random id}`,
`page` `GET /products?limit=20`, `search` the dinosaur search. Memory is the resident
set of the server's whole process tree (the master and its workers, from /proc), after
the rounds: VmRSS summed, and PSS summed (which counts a page shared by several
processes once, so a forked worker is not charged for its parent's pages).

--check runs the guarantees against each server instead and prints what it saw: the
Server header, HEAD, a 500 on a kept-alive connection, X-Forwarded-For and X-Request-ID
from a trusted proxy, /metrics summed over two workers, SIGTERM with a request in
flight (finished within the grace period; cut and answered 503 after it; exit status),
and clients that send their headers slowly (how many the server holds, what legit
requests cost meanwhile, and when it hangs up on them).

`--serve uvicorn|granian --port P --workers N` is how the benchmark starts a server
(the command line of one server process); not for use on its own.
"""

import argparse
import asyncio
import contextlib
import math
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import admin_token, free_port, run_wrk, seeded_schema
from fastapi import FastAPI, Request
from suite import scripts

SERVERS = ("uvicorn", "granian")
APP = "catalog.main:served_app"
CHECKED_APP = "servers:checked_app"  # the app plus two routes the checks need
_BACKPRESSURE = "BENCH_GRANIAN_BACKPRESSURE"  # --granian-backpressure, to the server process


def checked_app() -> FastAPI:
    """The served app with a route that fails and one that shows the client address."""
    from catalog.main import served_app

    app = served_app()

    @app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("a bug, not the database")

    @app.get("/test-only/client")
    async def client(request: Request) -> dict[str, Any]:
        return {
            "host": request.client.host if request.client else None,
            "scheme": request.url.scheme,
        }

    return app


# ---- one server process (`--serve`): what `catalog serve` would run ----------------


def serve(server: str, port: int, workers: int, app: str) -> None:
    from catalog.config import get_settings

    # `catalog serve`'s own: a clean shutdown on SIGTERM exits 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # One second past the app's own deadline (catalog/shutdown.py), as `catalog serve`.
    kill_after = math.ceil(get_settings().shutdown_grace_period) + 1
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            app, factory=True, host="127.0.0.1", port=port, workers=workers,
            server_header=False, proxy_headers=False, access_log=False,
            log_level="warning", timeout_graceful_shutdown=kill_after,
        )  # fmt: skip
    else:
        from granian import Granian
        from granian.constants import Interfaces, Loops
        from granian.log import LogLevels

        Granian(
            app, factory=True, interface=Interfaces.ASGI, address="127.0.0.1", port=port,
            workers=workers, loop=Loops.uvloop, log_access=False, log_level=LogLevels.warning,
            workers_kill_timeout=kill_after, working_dir=Path(__file__).parent,
            backpressure=int(os.environ.get(_BACKPRESSURE) or 0) or None,
        ).serve()  # fmt: skip


@dataclass
class Running:
    name: str
    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def tree(self) -> list[int]:
        """The server's process and all its descendants."""
        pids, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
        return pids

    def memory_mib(self) -> tuple[float, float, int]:
        """VmRSS summed over the tree, PSS summed over the tree (MiB), processes."""
        rss = pss = 0.0
        pids = self.tree()
        for pid in pids:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) / 1024
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) / 1024
        return rss, pss, len(pids)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def running(
    server: str, env: dict[str, str], workers: int, workdir: Path, *, app: str = APP
) -> Iterator[Running]:
    """`server` serving `app` with `workers` workers, once /health/live answers; stopped
    with SIGTERM (SIGKILL to its process group if it will not stop)."""
    port = free_port()
    env = {**os.environ, **env, "CATALOG_WORKERS": str(workers), "CATALOG_METRICS_PUBLIC": "true"}
    with contextlib.ExitStack() as stack:
        if workers > 1:
            env["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="catalog-metrics-")
            )
        log = workdir / f"{server}-{workers}w-{port}.log"
        command = [sys.executable, __file__, "--serve", server, "--port", str(port),
                   "--workers", str(workers), "--app", app]  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        handle = Running(server, f"http://127.0.0.1:{port}", port, process, log)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{handle.base_url}/health/ready", timeout=1).raise_for_status()
                    break
                except httpx.HTTPError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{server} did not start:\n{handle.output()}") from None
                    time.sleep(0.2)
            yield handle
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


# ---- the load ---------------------------------------------------------------------


def measure(args: argparse.Namespace, env: dict[str, str], workdir: Path) -> None:
    paths = scripts(workdir / "lua", args.products, token="")
    rows: list[str] = []
    for workers in args.workers:
        figures: dict[tuple[str, str], list[dict[str, float]]] = {}
        with contextlib.ExitStack() as stack:
            servers = {
                name: stack.enter_context(running(name, env, workers, workdir)) for name in SERVERS
            }
            for server in servers.values():  # warm-up: connections, caches, the pool
                for scenario in args.scenarios:
                    run_wrk(server.base_url, paths[scenario], 2, args.connections)
            for round_ in range(args.rounds):
                order = list(SERVERS) if round_ % 2 == 0 else list(reversed(SERVERS))
                for scenario in args.scenarios:
                    for name in order:
                        result = run_wrk(
                            servers[name].base_url, paths[scenario], args.seconds, args.connections
                        )
                        figures.setdefault((name, scenario), []).append(result)
                        print(f"{workers}w round {round_ + 1} {scenario:6} {name:8} "
                              f"{result['rps']:7.0f} req/s p50 {result['p50']:6.1f} ms "
                              f"p99 {result['p99']:7.1f} ms non-2xx {result['non2xx']:.0f} "
                              f"errors {result['socket_errors']:.0f}", flush=True)  # fmt: skip
            memory = {name: server.memory_mib() for name, server in servers.items()}
        for scenario in args.scenarios:
            runs = {name: figures[(name, scenario)] for name in SERVERS}

            def median(
                name: str, key: str, runs: dict[str, list[dict[str, float]]] = runs
            ) -> float:
                return statistics.median(run[key] for run in runs[name])

            def ratio(key: str, runs: dict[str, list[dict[str, float]]] = runs) -> float:
                # Each round's ratio, then the median: two servers at the same moment.
                pairs = zip(runs["granian"], runs["uvicorn"], strict=True)
                return statistics.median(g[key] / u[key] for g, u in pairs)

            for name in SERVERS:
                rss, pss, processes = memory[name]
                errors = sum(run["non2xx"] + run["socket_errors"] for run in runs[name])
                rows.append(
                    f"| {workers} | {scenario} | {name} | {median(name, 'rps'):.0f} | "
                    f"{median(name, 'p50'):.1f} | {median(name, 'p99'):.1f} | {rss:.0f} | "
                    f"{pss:.0f} ({processes}) | {errors:.0f} |"
                )
            rss_ratio = memory["granian"][0] / memory["uvicorn"][0]
            pss_ratio = memory["granian"][1] / memory["uvicorn"][1]
            rows.append(
                f"| {workers} | {scenario} | **granian / uvicorn** | **{ratio('rps'):.2f}x** | "
                f"{ratio('p50'):.2f}x | **{ratio('p99'):.2f}x** | {rss_ratio:.2f}x | "
                f"{pss_ratio:.2f}x | |"
            )
    print()
    print(
        "| workers | scenario | server | req/s | p50 ms | p99 ms | RSS MiB "
        "| PSS MiB (processes) | non-2xx + errors |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


# ---- the guarantees ---------------------------------------------------------------


def _exchange(sock: socket.socket, request: bytes, *, head: bool = False) -> tuple[bytes, bytes]:
    """Send one request; its header block and its Content-Length body (none for HEAD)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data, b""
        data += chunk
    header, _, body = data.partition(b"\r\n\r\n")
    length = 0 if head else next(
        int(line.split(b":")[1]) for line in header.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return header, body


def _header(block: bytes, name: str) -> str | None:
    for line in block.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.encode():
            return value.strip().decode()
    return None


def check_http(server: Running) -> dict[str, str]:
    seen: dict[str, str] = {}
    get = "GET {} HTTP/1.1\r\nHost: x\r\n{}\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        header, _ = _exchange(sock, get.format("/health/live", "").encode())
        seen["Server header"] = _header(header, "server") or "absent"
        h_head, h_body = _exchange(sock, b"HEAD /products/1 HTTP/1.1\r\nHost: x\r\n\r\n", head=True)
        g_head, g_body = _exchange(sock, get.format("/products/1", "").encode())
        seen["HEAD /products/1"] = (
            f"{h_head.split(b' ')[1].decode()}, Content-Length {_header(h_head, 'content-length')} "
            f"(GET's {len(g_body)}), no body: "
            f"{'yes' if not h_body and g_head.startswith(b'HTTP/1.1 200') else 'NO'}"
        )
        first, _ = _exchange(sock, get.format("/test-only/boom", "").encode())
        second, _ = _exchange(sock, get.format("/health/live", "").encode())
        seen["500 then a request on the same connection"] = (
            f"{first.split(b' ')[1].decode()} {_header(first, 'content-type')}, "
            f"then {second.split(b' ')[1].decode() if second else 'connection closed'}"
        )
        proxied = (
            "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Request-ID: edge-42\r\n"
        )
        header, body = _exchange(sock, get.format("/test-only/client", proxied).encode())
        seen["X-Forwarded-For/-Proto, X-Request-ID from 127.0.0.1 (trusted)"] = (
            f"{body.decode()}, X-Request-ID {_header(header, 'x-request-id')}"
        )
    return seen


def check_metrics(name: str, env: dict[str, str], workdir: Path) -> str:
    live = 'catalog_http_requests_total{method="GET",route="/health/live",status="200"}'

    def count(exposition: str, sample: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in exposition.splitlines()
            if line.startswith(sample + " ")
        )

    with running(name, {**env, "CATALOG_POOL_SIZE": "3"}, 2, workdir) as server:
        before = httpx.get(f"{server.base_url}/metrics").text
        for _ in range(40):  # a new connection per request: the kernel spreads them
            httpx.get(f"{server.base_url}/health/live", headers={"Connection": "close"})
        after = httpx.get(f"{server.base_url}/metrics").text
    return (
        f"40 requests counted {count(after, live) - count(before, live):.0f}, "
        f"pool size summed {count(after, 'catalog_db_pool_size'):.0f} (2 workers x 3)"
    )


def check_shutdown(name: str, env: dict[str, str], workdir: Path, url: str, grace: int) -> str:
    """A POST waiting on a write lock when SIGTERM comes; the lock goes after 3 s."""
    env = {**env, "CATALOG_SHUTDOWN_GRACE_PERIOD": str(grace), "CATALOG_SQLITE_BUSY_TIMEOUT": "30"}
    database = url.split("///", 1)[1]
    with running(name, env, 1, workdir) as server:
        token = asyncio.run(admin_token(url))

        async def scenario() -> str:
            lock = sqlite3.connect(database, isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(
                base_url=server.base_url, timeout=30, headers=headers
            ) as client:
                body = {"sku": f"SHUT-{time.time_ns()}", "name": "x", "price": "1.00", "stock": 1}
                answered_at: list[float] = []

                async def post() -> httpx.Response:
                    try:
                        return await client.post("/products", json=body)
                    finally:
                        answered_at.append(time.monotonic() - signalled)

                async def exit_code() -> tuple[int, float]:
                    code = await asyncio.to_thread(server.process.wait, 30)
                    return code, time.monotonic() - signalled

                in_flight = asyncio.create_task(post())
                await asyncio.sleep(1)
                signalled = time.monotonic()
                server.process.send_signal(signal.SIGTERM)
                exited = asyncio.create_task(exit_code())
                await asyncio.sleep(0.5)
                try:
                    async with httpx.AsyncClient() as fresh:
                        await fresh.get(f"{server.base_url}/health/live")
                    new = "ANSWERED"
                except httpx.HTTPError as error:
                    new = f"refused ({type(error).__name__})"
                await asyncio.sleep(2.5)
                lock.execute("ROLLBACK")
                try:
                    response = await in_flight
                    answer = f"{response.status_code} {response.headers.get('connection', '')}"
                except httpx.HTTPError as error:
                    answer = f"no answer ({type(error).__name__})"
                code, after = await exited
                return (
                    f"grace {grace} s, lock released 3 s after SIGTERM: new connections {new}; "
                    f"the request in flight: {answer.strip()} at {answered_at[0]:.1f} s; "
                    f"exit status {code} at {after:.1f} s"
                )

        return asyncio.run(scenario())


async def _slow_client(
    port: int, opened: list[float], closed: list[float], started: float, said: set[bytes]
) -> None:
    """Sends a request line, then one header byte every 2 s, for as long as it is let."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    opened.append(time.monotonic() - started)
    try:
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        while True:
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(1024), 2)
                said.add(answer.split(b"\r\n", 1)[0])  # the status line, or b"" at hang-up
                if answer == b"" or b"\r\n\r\n" in answer:
                    break
            writer.write(b"X")
    except OSError:
        pass
    finally:
        closed.append(time.monotonic() - started)
        writer.close()


def check_slow_headers(
    name: str, env: dict[str, str], workdir: Path, counts: list[int], wrk_script: Path
) -> list[str]:
    lines = []
    with running(name, env, 1, workdir) as server:
        for count in counts:

            async def scenario(count: int = count) -> str:
                opened: list[float] = []
                closed: list[float] = []
                said: set[bytes] = set()
                started = time.monotonic()
                tasks = [
                    asyncio.create_task(_slow_client(server.port, opened, closed, started, said))
                    for _ in range(count)
                ]
                await asyncio.sleep(3 + count / 1000)  # let them all connect
                result = await asyncio.to_thread(run_wrk, server.base_url, wrk_script, 5, 16)
                held = len(opened) - len(closed)
                await asyncio.sleep(max(0.0, 40 - (time.monotonic() - started)))
                held_at_40s = len(opened) - len(closed)
                first_cut = f"{min(closed):.0f} s" if closed else "never"
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                return (
                    f"{count} slow clients: {len(opened)} connected, {held} held during the "
                    f"load; legit `one` {result['rps']:.0f} req/s, p99 {result['p99']:.1f} ms, "
                    f"errors {result['socket_errors'] + result['non2xx']:.0f}; still held at "
                    f"40 s: {held_at_40s} (first hung up at {first_cut}, after sending "
                    f"{b' or '.join(sorted(said - {b''})).decode() or 'nothing'})"
                )

            lines.append(asyncio.run(scenario()))
    return lines


def check(args: argparse.Namespace, env: dict[str, str], url: str, workdir: Path) -> None:
    trusted = {**env, "CATALOG_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    paths = scripts(workdir / "lua", args.products, token="")
    for name in SERVERS:
        print(f"## {name}", flush=True)
        with running(name, trusted, 1, workdir, app=CHECKED_APP) as server:
            for what, seen in check_http(server).items():
                print(f"- {what}: {seen}", flush=True)
        print(f"- /metrics with 2 workers: {check_metrics(name, env, workdir)}", flush=True)
        for grace in (10, 1):
            print(f"- SIGTERM, {check_shutdown(name, env, workdir, url, grace)}", flush=True)
        for line in check_slow_headers(name, env, workdir, args.slow_clients, paths["one"]):
            print(f"- {line}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--scenarios", nargs="+", default=["one", "page"], choices=["one", "page", "search", "live"]
    )
    parser.add_argument("--check", action="store_true", help="check the guarantees instead")
    parser.add_argument("--slow-clients", type=int, nargs="+", default=[0, 1000, 4000])
    parser.add_argument(
        "--granian-backpressure",
        type=int,
        help="Granian's bound on connections per worker (default: its own, 1024 / workers)",
    )
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--app", default=APP, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.workers[0], args.app)
        return
    workdir = Path(tempfile.mkdtemp(prefix="catalog-servers-"))
    url = f"sqlite+inline:///{workdir / 'bench.db'}"
    asyncio.run(seeded_schema(url, args.products))
    env = {
        "CATALOG_DATABASE_URL": url,
        "CATALOG_ACCESS_LOG": "false",
        "CATALOG_LOG_LEVEL": "WARNING",
    }
    if args.granian_backpressure:
        env[_BACKPRESSURE] = str(args.granian_backpressure)
    print(
        f"granian {version('granian')}, uvicorn {version('uvicorn')}, {os.cpu_count()} CPUs; "
        f"logs in {workdir}"
    )
    if args.check:
        check(args, env, url, workdir)
    else:
        measure(args, env, workdir)


def version(package: str) -> str:
    from importlib.metadata import version as installed

    return installed(package)


if __name__ == "__main__":
    main()
