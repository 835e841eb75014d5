"""A PostgreSQL primary and one hot standby of the test's own, streaming, on free ports.

Never the shared servers: both clusters live in one temporary directory (the primary's,
made by ThrowawayPostgres) and are gone, with it, when stop() returns. The standby is a
pg_basebackup of the primary (-R -X stream) over a physical replication slot, so it can
be stopped, paused or left behind for as long as a test likes and still catch up.
"""

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from tests.servers import free_port
from tests.throwaway import ThrowawayPostgres

SLOT = "catalog_standby"
# The standby's cluster_name, which its WAL receiver reports as application_name.
STANDBY_NAME = "catalog_standby"

StopMode = Literal["smart", "fast", "immediate"]


class ReplicaPrimary(ThrowawayPostgres):
    """ThrowawayPostgres set up to be streamed from: wal_level=replica, WAL senders."""

    SETTINGS = (
        "\n# catalog tests: a primary with a streaming hot standby\n"
        "wal_level = replica\n"
        "max_wal_senders = 5\n"
        "max_replication_slots = 5\n"
        "hot_standby = on\n"
        # The slot keeps what the standby has not received; this covers the moments
        # before the slot exists and a standby made without one.
        "wal_keep_size = 128MB\n"
        "wal_sender_timeout = 10s\n"
    )

    def __init__(self, directory: Path | None = None) -> None:
        super().__init__(directory or Path())
        self._configured = False

    def start(self) -> None:
        if not self._configured:
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(self.SETTINGS)
            self._configured = True
        super().start()


class ThrowawayReplicatedPostgres:
    """A real PostgreSQL primary and one hot standby streaming from it.

    `start()` makes and starts both and returns once the standby is in recovery and the
    primary's pg_stat_replication shows it streaming. `stop()` stops both at once and
    removes their directory. Settings are those of ThrowawayPostgres (trust, fsync off).
    """

    def __init__(self, *, timeout: float = 30) -> None:
        self.timeout = timeout
        self.primary = ReplicaPrimary()
        self.directory: Path = self.primary.directory
        self.bin: Path = self.primary.bin
        self._as: list[str] = self.primary._as
        self.standby_data = self.directory / "standby"
        self.primary_port: int = self.primary.port
        self.standby_port: int = free_port()
        self.primary_url: str = self.url_for(self.primary_port)
        self.standby_url: str = self.url_for(self.standby_port)
        self.primary_running = False
        self.standby_running = False
        self.startup_seconds: float | None = None

    @staticmethod
    def url_for(port: int, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"

    def multihost_url(self, target_session_attrs: str = "read-write") -> str:
        """One SQLAlchemy URL naming both servers, for asyncpg to choose between."""
        return (
            "postgresql+asyncpg://postgres@/postgres"
            f"?host=127.0.0.1:{self.primary_port}&host=127.0.0.1:{self.standby_port}"
            f"&target_session_attrs={target_session_attrs}"
        )

    # Running the tools

    def _run(self, tool: str, *args: str, timeout: float | None = None) -> str:
        command = [*self._as, str(self.bin / tool), *args]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.directory,
            timeout=timeout or self.timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def psql(self, port: int, sql: str) -> str:
        """Run one statement as postgres on the server at `port`; its output, stripped."""
        return self._run(
            "psql",
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.directory),
            "-p",
            str(port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ).strip()

    def _answers(self, port: int, sql: str = "SELECT 1") -> str | None:
        try:
            return self.psql(port, sql)
        except (RuntimeError, subprocess.TimeoutExpired):
            return None

    def _wait(self, what: str, done: Callable[[], bool], timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} (after {timeout or self.timeout} s)\n{self.logs()}")
            time.sleep(0.02)

    def logs(self) -> str:
        parts = []
        for name in ("server.log", "standby.log"):
            path = self.directory / name
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-20:]
                parts.append(f"--- {name}\n" + "\n".join(tail))
        return "\n".join(parts)

    # Life cycle

    def start(self) -> None:
        began = time.monotonic()
        try:
            self.primary.start()
            self.primary_running = True
            self._run(
                "pg_basebackup",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.primary_port),
                "-U",
                "postgres",
                "-D",
                str(self.standby_data),
                "-R",
                "-X",
                "stream",
                "-C",
                "-S",
                SLOT,
                "--checkpoint=fast",
                "--no-sync",
                timeout=max(self.timeout, 60),
            )
            self.start_standby()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def start_standby(self) -> None:
        """Start the standby; with the primary up, return once it streams again."""
        options = (
            f"-p {self.standby_port} -c listen_addresses=127.0.0.1 -k {self.directory}"
            f" -c fsync=off -c hot_standby=on -c hot_standby_feedback=on"
            f" -c cluster_name={STANDBY_NAME} -c wal_receiver_status_interval=1s"
        )
        log = str(self.directory / "standby.log")
        self._run("pg_ctl", "-D", str(self.standby_data), "-o", options, "-l", log, "-w", "start")
        self.standby_running = True
        self._wait(
            "the standby accepts no connection",
            lambda: self._answers(self.standby_port) is not None,
        )
        if self.psql(self.standby_port, "SELECT pg_is_in_recovery()") == "t" and (
            self.primary_running
        ):
            self.wait_streaming()

    def wait_streaming(self) -> None:
        sql = (
            "SELECT count(*) FROM pg_stat_replication"
            f" WHERE application_name = '{STANDBY_NAME}' AND state = 'streaming'"
        )
        self._wait(
            "the standby does not stream from the primary",
            lambda: self._answers(self.primary_port, sql) == "1",
        )

    def stop_standby(self, mode: StopMode = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.standby_data), "-m", mode, "-w", "stop")
        self.standby_running = False

    def stop_primary(self) -> None:
        """Stop the primary at once, as a crash would."""
        self.primary.crash()
        self.primary_running = False

    def promote(self) -> None:
        """Make the standby a primary; return once it is out of recovery."""
        self._run("pg_ctl", "-D", str(self.standby_data), "-w", "promote")
        self._wait(
            "the standby is still in recovery after promote",
            lambda: self._answers(self.standby_port, "SELECT pg_is_in_recovery()") == "f",
        )

    def stop(self) -> None:
        """Stop both servers at once and remove their directory. Safe to call twice."""
        if self.standby_running or (self.standby_data / "postmaster.pid").exists():
            stop = ["-D", str(self.standby_data), "-m", "immediate", "-w", "stop"]
            subprocess.run(
                [*self._as, str(self.bin / "pg_ctl"), *stop],
                capture_output=True,
                check=False,
                timeout=self.timeout,
            )
            self.standby_running = False
        # Stops the primary if it runs, then removes the whole directory.
        self.primary.stop()
        self.primary_running = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Replay

    def pause_replay(self) -> None:
        """Pause WAL replay on the standby; return once it is paused."""
        self.psql(self.standby_port, "SELECT pg_wal_replay_pause()")
        self._wait(
            "the standby's replay does not pause",
            lambda: (
                self.psql(self.standby_port, "SELECT pg_get_wal_replay_pause_state()") == "paused"
            ),
        )

    def resume_replay(self) -> None:
        self.psql(self.standby_port, "SELECT pg_wal_replay_resume()")

    def replay_lsn(self) -> str:
        """The standby's last replayed WAL position, e.g. '0/3000148'."""
        return self.psql(self.standby_port, "SELECT pg_last_wal_replay_lsn()")

    def current_lsn(self) -> str:
        """The primary's current WAL write position."""
        return self.psql(self.primary_port, "SELECT pg_current_wal_lsn()")

    def lag_bytes(self) -> int:
        """How many bytes of the primary's WAL the standby has yet to replay."""
        lsn = self.current_lsn()
        return int(
            self.psql(
                self.standby_port,
                f"SELECT pg_wal_lsn_diff('{lsn}', pg_last_wal_replay_lsn())::bigint",
            )
        )

    def wait_caught_up(self, timeout: float | None = None) -> None:
        """Return once the standby has replayed all the primary had written when called."""
        lsn = self.current_lsn()
        sql = f"SELECT pg_wal_lsn_diff('{lsn}', pg_last_wal_replay_lsn()) <= 0"
        self._wait(
            "the standby does not catch up",
            lambda: self._answers(self.standby_port, sql) == "t",
            timeout,
        )
