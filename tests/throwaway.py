"""Database servers of the test's own, on free ports, to stop, crash and freeze at will.

Never the shared servers: each instance lives in a temporary directory and is gone
when the test ends. PostgreSQL comes from /usr/lib/postgresql/*/bin (initdb, pg_ctl),
MariaDB from mariadb-install-db and mariadbd.
"""

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

import pytest

from tests.servers import free_port

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(what: str) -> None:
    message = f"{what} is needed to run a throwaway server for this test"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: fault tests must run)", pytrace=False)
    pytest.skip(message)


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in found.stdout.split()]


class _Instance:
    port: int
    pid: int | None = None

    def _processes(self) -> list[int]:
        assert self.pid is not None
        return [self.pid, *_children(self.pid)]

    def freeze(self) -> None:
        """SIGSTOP the server and its children: it hangs instead of refusing."""
        for pid in self._processes():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._processes():
            with contextlib.suppress(ProcessLookupError):  # one that has just exited
                os.kill(pid, signal.SIGCONT)


class ThrowawayPostgres(_Instance):
    def __init__(self, directory: Path) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            _missing("PostgreSQL's initdb and pg_ctl")
        self.bin = Path(bins[-1])
        # Not under pytest's tmp_path: its parents are private to root, and the cluster
        # may have to run as the postgres user.
        self.directory = Path(tempfile.mkdtemp(prefix="catalog-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        # initdb refuses to run as root: run the cluster as the postgres user then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self._as, str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            cwd=self.directory,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        log = str(self.directory / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def crash(self) -> None:
        """Stop at once, as a crash or an operator's immediate restart would."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        self.pid = None

    def stop(self) -> None:
        try:
            if self.pid is not None:
                self.thaw()
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        except (OSError, subprocess.CalledProcessError):
            # Whatever pg_ctl could not do, the postmaster's own pid still can.
            if self.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
        finally:
            self.pid = None
            shutil.rmtree(self.directory, ignore_errors=True)


class ThrowawayMariaDB(_Instance):
    def __init__(self, directory: Path) -> None:
        if shutil.which("mariadbd") is None and not Path("/usr/sbin/mariadbd").exists():
            _missing("mariadbd")
        if shutil.which("mariadb-install-db") is None:
            _missing("mariadb-install-db")
        self.directory = directory
        self.data = directory / "data"
        self.socket = directory / "mariadb.sock"
        self.port = free_port()
        self.url = f"mysql+asyncmy://root@127.0.0.1:{self.port}/test"
        directory.mkdir(parents=True, exist_ok=True)
        self._user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self._user,
            ],
            check=True,
            capture_output=True,
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._created = False

    def start(self) -> None:
        mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        with (self.directory / "server.log").open("ab") as log:
            self.process = self._spawn(mariadbd, log)
        self.pid = self.process.pid
        deadline = time.monotonic() + 60
        while not self._answers():
            assert self.process.poll() is None, (self.directory / "server.log").read_text()
            assert time.monotonic() < deadline, "mariadbd did not start"
            time.sleep(0.2)
        if not self._created:
            self._client("CREATE DATABASE IF NOT EXISTS test")
            self._created = True

    def _spawn(self, mariadbd: str, log: IO[bytes]) -> "subprocess.Popen[bytes]":
        return subprocess.Popen(
            [
                mariadbd,
                "--no-defaults",
                f"--datadir={self.data}",
                f"--port={self.port}",
                f"--socket={self.socket}",
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
                "--innodb-log-file-size=16M",
                "--skip-log-bin",
                *self._user,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def _client(self, sql: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-e", sql],
            capture_output=True,
            check=False,
            timeout=10,
        )

    def _answers(self) -> bool:
        return self.socket.exists() and self._client("SELECT 1").returncode == 0

    def crash(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)
        self.process = None
        self.pid = None

    def stop(self) -> None:
        if self.process is not None:
            self.thaw()
            self.crash()


class ThrowawayPgBouncer(_Instance):
    """A real PgBouncer in transaction mode, on a free port, in front of a PostgreSQL.

    Its server pool (`pool_size`) is smaller than the clients' pools, as in production.
    The safety timeouts reach its server connections through connect_query, where
    catalog (which does not send them behind a pooler) expects an operator to put them.
    """

    def __init__(
        self,
        target_port: int,
        *,
        pool_size: int = 4,
        max_client_conn: int = 200,
        statement_timeout_ms: int | None = 30_000,
        idle_in_transaction_ms: int = 60_000,
        query_wait_timeout: int = 30,
        server_connect_timeout: int = 15,
    ) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            _missing("pgbouncer (Debian package pgbouncer)")
        self.binary = binary
        self.directory = Path(tempfile.mkdtemp(prefix="catalog-pgbouncer-"))
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/pgbouncer"
        # None: the operator forgot them (what catalog doctor warns about).
        connect_query = (
            ""
            if statement_timeout_ms is None
            else f" connect_query='SET statement_timeout = {statement_timeout_ms}; "
            f"SET idle_in_transaction_session_timeout = {idle_in_transaction_ms}'"
        )
        (self.directory / "users.txt").write_text('"postgres" ""\n')
        (self.directory / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={target_port}{connect_query}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.directory / 'users.txt'}\n"
            "admin_users = postgres\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            f"max_client_conn = {max_client_conn}\n"
            f"query_wait_timeout = {query_wait_timeout}\n"
            f"server_connect_timeout = {server_connect_timeout}\n"
            # A dead server is retried every second, not every 15 s.
            "server_login_retry = 1\n"
            f"logfile = {self.directory / 'pgbouncer.log'}\n"
        )
        # PgBouncer refuses to run as root; -u drops to the postgres user.
        self._as = ["-u", "postgres"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.directory, "postgres", "postgres")
            for path in self.directory.iterdir():
                shutil.chown(path, "postgres", "postgres")
        self.process: subprocess.Popen[bytes] | None = None

    def url_for(self, database: str) -> str:
        """The URL of `database` through this pooler."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, *self._as, str(self.directory / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid
        deadline = time.monotonic() + 20
        while "listening on" not in self.log():
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, f"pgbouncer did not start:\n{self.log()}"
            time.sleep(0.05)

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            self.thaw()
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
            self.pid = None
        shutil.rmtree(self.directory, ignore_errors=True)


class PooledPostgres:
    """A throwaway PostgreSQL behind a throwaway PgBouncer (transaction mode): the
    outages happen to the database, the service talks to the pooler."""

    def __init__(self, **pooler_options: int) -> None:
        self.database = ThrowawayPostgres(Path())
        self.pooler: ThrowawayPgBouncer | None = None
        self.pooler_options = pooler_options

    @property
    def url(self) -> str:
        assert self.pooler is not None
        return self.pooler.url_for("postgres")

    @property
    def admin_url(self) -> str:
        assert self.pooler is not None
        return self.pooler.admin_url

    def start(self) -> None:
        self.database.start()
        if self.pooler is None:
            self.pooler = ThrowawayPgBouncer(self.database.port, **self.pooler_options)
            self.pooler.start()

    def crash(self) -> None:
        self.database.crash()

    def freeze(self) -> None:
        self.database.freeze()

    def thaw(self) -> None:
        self.database.thaw()

    def stop(self) -> None:
        try:
            if self.pooler is not None:
                self.pooler.stop()
        finally:
            self.database.stop()
