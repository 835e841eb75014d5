"""What the benchmarks share: database URLs, a fresh schema, a served app, wrk."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from catalog.config import Settings
from catalog.db.base import utcnow
from catalog.db.engine import create_engine
from catalog.models import Base, migrations
from catalog.products.seed import seed_products
from catalog.users.models import Role, User
from catalog.users.security import create_access_token

SERVER_URLS = {
    "postgresql": os.environ.get(
        "CATALOG_TEST_POSTGRESQL_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get(
        "CATALOG_TEST_MARIADB_URL", "mysql+asyncmy://root@127.0.0.1:3306/test"
    ),
}


def database_url(backend: str, workdir: Path) -> str:
    """The benchmark database of `backend` (its tables are dropped and rebuilt)."""
    if backend == "sqlite":
        return f"sqlite+inline:///{workdir / 'bench.db'}"
    return SERVER_URLS[backend]


async def fresh_schema(url: str) -> None:
    """Drop catalog's tables and migrate from scratch."""
    # Every benchmark that seeds comes here: say which database loses its tables.
    shown = make_url(url).render_as_string(hide_password=True)
    print(f"bench: dropping and rebuilding catalog's tables in {shown}", file=sys.stderr)
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        async with engine.begin() as connection:
            for table in reversed(Base.metadata.sorted_tables):
                await connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")
            await connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
            if connection.dialect.name == "sqlite":  # the FTS5 table of migration 0004
                await connection.exec_driver_sql("DROP TABLE IF EXISTS products_fts")
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()


async def seeded_schema(url: str, products: int) -> float:
    """A fresh schema with `products` demo products (`catalog seed`'s path); seconds taken."""
    await fresh_schema(url)
    # A million-row load outlasts the service's 30 s statement timeout.
    engine = create_engine(Settings(database_url=url, statement_timeout=600), pooled=False)
    try:
        started = time.perf_counter()
        await seed_products(engine, count=products, seed=1)
        return time.perf_counter() - started
    finally:
        await engine.dispose()


async def create_admin(url: str) -> int:
    """A new admin account in the database at `url` (it never signs in with a password);
    its id."""
    engine = create_engine(Settings(database_url=url), pooled=False)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(
                insert(User).values(
                    email=f"bench-{time.time_ns()}@example.com",
                    password_hash="unusable",
                    role=Role.ADMIN.value,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
    finally:
        await engine.dispose()
    return int(result.inserted_primary_key[0])


async def admin_token(url: str) -> str:
    """A new admin in the database and an access token for it (default dev secret)."""
    token, _ = create_access_token(await create_admin(url), Settings())
    return token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A server process started by `server_process`."""

    base_url: str
    process: subprocess.Popen[bytes]

    def peak_rss_mib(self) -> list[float]:
        """Peak resident memory (VmHWM) of each worker process, in MiB: the process
        itself with one worker, its children with several."""
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout.split()  # fmt: skip
        peaks = []
        for pid in children or [str(self.process.pid)]:
            status = Path(f"/proc/{pid}/status").read_text()
            match = re.search(r"VmHWM:\s+(\d+) kB", status)
            if match:
                peaks.append(int(match.group(1)) / 1024)
        return peaks


@contextmanager
def server_process(
    app: str,
    env: dict[str, str],
    *,
    workers: int = 1,
    factory: bool = False,
    app_dir: Path | None = None,
    ready_path: str = "/health/live",
    uvicorn_options: tuple[str, ...] = (),
) -> Iterator[Server]:
    """`uvicorn app` (no access log) on a free port, once `ready_path` answers.
    `uvicorn_options` come last, so they override (`--access-log`, `--log-config F`)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port),
               "--workers", str(workers), "--no-access-log", "--log-level", "warning",
               *uvicorn_options]  # fmt: skip
    if factory:
        command.append("--factory")
    if app_dir is not None:
        command += ["--app-dir", str(app_dir)]
    # The server's output goes to a file: a stalled tutorial server prints a traceback
    # per timed-out request, thousands of lines. Its size and last line are reported.
    with tempfile.TemporaryFile() as log:
        # A session of its own, so that a server that will not stop is killed with its
        # workers.
        process = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            yield _ready(f"http://127.0.0.1:{port}", ready_path, process, log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # A stalled server (the tutorial's thread-pool deadlock) waits forever for
                # requests that cannot finish.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.seek(0)
            lines = log.read().decode(errors="replace").splitlines()
            if lines:
                print(f"  ({app} wrote {len(lines)} lines; the last: {lines[-1][:160]})")


def _ready(
    base_url: str, ready_path: str, process: subprocess.Popen[bytes], log: IO[bytes]
) -> Server:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base_url}{ready_path}", timeout=1).raise_for_status()
            return Server(base_url, process)
        except httpx.HTTPError as error:
            if time.monotonic() > deadline or process.poll() is not None:
                log.seek(0)
                output = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"the server did not start; its output:\n{output}") from error
            time.sleep(0.2)


@contextmanager
def catalog_server(
    env: dict[str, str], workers: int = 1, *, source: Path | None = None
) -> Iterator[Server]:
    """`uvicorn catalog.main:served_app` (no access log) as `catalog serve --workers N`
    runs it: every worker told the count, several sharing one metrics directory.
    `source`: serve the catalog package of that directory instead (an earlier commit's
    src/, whose app factory may be create_app only)."""
    # The benchmarks read /metrics and /health/pool, closed by default.
    env = {**env, "CATALOG_WORKERS": str(workers), "CATALOG_METRICS_PUBLIC": "true"}
    with contextlib.ExitStack() as stack:
        if workers > 1:
            env["PROMETHEUS_MULTIPROC_DIR"] = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="catalog-metrics-")
            )
        app = "catalog.main:served_app"
        if source is not None and "def served_app" not in (source / "catalog/main.py").read_text():
            app = "catalog.main:create_app"  # before served_app, create_app froze the gc
        ready = "/health/ready"
        yield stack.enter_context(
            server_process(
                app, env, workers=workers, factory=True, app_dir=source, ready_path=ready
            )
        )


@contextmanager
def served(env: dict[str, str], workers: int = 1) -> Iterator[str]:
    """catalog as `catalog_server` starts it; yields its base URL."""
    with catalog_server(env, workers) as server:
        yield server.base_url


def _to_ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:  # wrk prints e.g. "-nanus" when nothing completed
        return float("nan")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(base_url: str, script: Path, seconds: int, connections: int) -> dict[str, float]:
    """One wrk run; requests/s, p50 and p99 in ms, and non-2xx answers."""
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
         "-s", str(script), base_url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # fmt: skip
    if "Requests/sec" not in output:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    # Anchored: "+/- Stdev" columns such as "71.50%" must not match.
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    total = re.search(r"(\d+) requests in", output)
    assert found and p50 and p99 and total, output
    return {
        "rps": float(found.group(1)),
        "p50": _to_ms(p50.group(1)),
        "p99": _to_ms(p99.group(1)),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "socket_errors": float(sum(map(int, socket_errors.groups()))) if socket_errors else 0.0,
        "requests": float(total.group(1)),
    }
