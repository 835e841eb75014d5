"""A real MariaDB Galera cluster of the test's own: three mariadbd on 127.0.0.1, stopped at will.

Never the shared servers: the nodes live in one temporary directory, run as the mysql user
(when the test runs as root) and are gone, directory and all, after stop(). Node 0 bootstraps
the cluster; the others join it and receive its data by an rsync state transfer (SST).

Every port (client, group communication, IST, SST) is below 32768, outside Linux's ephemeral
range, so that no outgoing connection of this machine can take one between the pick and the
bind.
"""

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from tests.throwaway import _Instance, _missing

PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()


def free_low_port() -> int:
    """A port in PORT_RANGE that binds now and that this process has not handed out before."""
    for _ in range(500):
        port = random.randint(*PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {PORT_RANGE}")


def _mariadbd() -> str:
    return shutil.which("mariadbd") or "/usr/sbin/mariadbd"


class _Node(_Instance):
    """One mariadbd of the cluster, in its own directory with its own socket and ports."""

    def __init__(self, directory: Path, index: int) -> None:
        self.index = index
        self.directory = directory
        self.data = directory / "data"
        self.socket = directory / "mariadb.sock"
        self.log_path = directory / "server.log"
        self.port = free_low_port()
        self.gcomm_port = free_low_port()
        self.ist_port = free_low_port()
        self.sst_port = free_low_port()
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self, arguments: list[str], log: IO[bytes]) -> None:
        # A session (and so a process group) of its own: the SST scripts and the rsync they
        # run are killed with the node.
        self.process = subprocess.Popen(
            arguments, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.pid = self.process.pid

    def client(self, sql: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-NB", "-e", sql],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )

    def status(self) -> dict[str, str]:
        try:
            result = self.client("SHOW GLOBAL STATUS LIKE 'wsrep%'")
        except subprocess.TimeoutExpired:
            return {}
        if result.returncode != 0:
            return {}
        return dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the node and everything it started, as a crash would."""
        if self.process is None:
            return
        # SIGKILL stops a SIGSTOPped process too; the group holds the SST script and rsync.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None
        self.pid = None

    def shut_down(self) -> None:
        """SIGTERM: a clean shutdown that saves the node's position, so it rejoins by IST."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.thaw()
            self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=60)
        self.kill()


class ThrowawayGalera:
    """A 3-node (by default) MariaDB Galera cluster on 127.0.0.1.

    urls[i] reaches node i's database `test` as root without a password; ports[i] is its
    client port. start() bootstraps node 0, joins the others and waits until every node is
    Synced in a cluster of all of them; stop() kills every node and removes the directory.
    Call stop() in a finally (a start() that fails stops the cluster itself).

    provider_options is appended to wsrep_provider_options, e.g. "evs.suspect_timeout=PT2S;
    evs.inactive_timeout=PT3S" for a cluster that notices a dead node sooner than in 5 s.
    """

    urls: list[str]
    ports: list[int]

    def __init__(self, size: int = 3, *, provider_options: str = "") -> None:
        if not Path(_mariadbd()).exists():
            _missing("mariadbd")
        for tool in ("mariadb-install-db", "mariadb", "rsync"):
            if shutil.which(tool) is None:
                _missing(tool)
        if not PROVIDER.exists():
            _missing(f"the Galera provider {PROVIDER} (Debian package galera-4)")
        if shutil.which("wsrep_sst_rsync") is None:
            _missing("wsrep_sst_rsync (Debian package mariadb-server)")
        self.size = size
        self.provider_options = provider_options
        # Not under pytest's tmp_path: its parents are private to root, and the nodes run as
        # the mysql user then.
        self.directory = Path(tempfile.mkdtemp(prefix="catalog-galera-"))
        try:
            self._prepare()
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def _prepare(self) -> None:
        self._as_root = os.geteuid() == 0
        self._user = ["--user=mysql"] if self._as_root else []
        self.nodes = [_Node(self.directory / f"node{i}", i) for i in range(self.size)]
        for node in self.nodes:
            node.directory.mkdir()
        if self._as_root:
            for path in (self.directory, *(node.directory for node in self.nodes)):
                shutil.chown(path, "mysql", "mysql")
        self.ports = [node.port for node in self.nodes]
        self.urls = [f"mysql+asyncmy://root@127.0.0.1:{port}/test" for port in self.ports]
        self._address = "gcomm://" + ",".join(f"127.0.0.1:{n.gcomm_port}" for n in self.nodes)
        self._bootstrapped = False
        # Only node 0 needs a data directory: the others get its copy by SST.
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.nodes[0].data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self._user,
            ],
            check=True,
            capture_output=True,
        )

    def _arguments(self, node: _Node, *, bootstrap: bool) -> list[str]:
        provider_options = ";".join(
            option
            for option in (
                f"gmcast.listen_addr=tcp://127.0.0.1:{node.gcomm_port}",
                f"ist.recv_addr=127.0.0.1:{node.ist_port}",
                "gcache.size=16M",
                # Membership changes converge in a fraction of a second on loopback, not ~2 s.
                "evs.join_retrans_period=PT0.1S",
                self.provider_options,
            )
            if option
        )
        return [
            _mariadbd(),
            "--no-defaults",
            f"--datadir={node.data}",
            f"--port={node.port}",
            f"--socket={node.socket}",
            "--bind-address=127.0.0.1",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--binlog-format=ROW",
            "--default-storage-engine=InnoDB",
            "--innodb-autoinc-lock-mode=2",
            "--wsrep-on=ON",
            f"--wsrep-provider={PROVIDER}",
            "--wsrep-cluster-name=catalog-test",
            f"--wsrep-node-name=node{node.index}",
            "--wsrep-node-address=127.0.0.1",
            f"--wsrep-cluster-address={self._address}",
            f"--wsrep-provider-options={provider_options}",
            "--wsrep-sst-method=rsync",
            f"--wsrep-sst-receive-address=127.0.0.1:{node.sst_port}",
            *(["--wsrep-new-cluster"] if bootstrap else []),
            *self._user,
        ]

    def _recovered_position(self, node: _Node) -> list[str]:
        """After a crash, what Debian's galera_recovery does before a start: read the last
        committed position from InnoDB (mariadbd --wsrep-recover), so that the node asks
        for an IST of what it missed and not for a whole SST."""
        grastate = node.data / "grastate.dat"
        saved = re.search(
            r"^seqno:\s*(-?\d+)", grastate.read_text() if grastate.exists() else "", re.M
        )
        if saved is None or saved.group(1) != "-1" or not (node.data / "ibdata1").exists():
            return []
        recovery = subprocess.run(
            [*self._arguments(node, bootstrap=False), "--wsrep-recover"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        with node.log_path.open("a") as log:
            log.write(recovery.stdout + recovery.stderr)
        found = re.search(r"WSREP: Recovered position: (\S+:\d+)$", recovery.stderr, re.M)
        return [f"--wsrep-start-position={found.group(1)}"] if found else []

    def _launch(self, index: int, *, bootstrap: bool) -> None:
        node = self.nodes[index]
        assert node.process is None, f"node {index} is running"
        node.data.mkdir(exist_ok=True)
        if self._as_root:
            shutil.chown(node.data, "mysql", "mysql")
        arguments = self._arguments(node, bootstrap=bootstrap)
        arguments += self._recovered_position(node)
        with node.log_path.open("ab") as log:
            node.spawn(arguments, log)

    def _wait_synced(self, indexes: list[int], cluster_size: int, within: float = 120) -> None:
        deadline = time.monotonic() + within
        waiting = list(indexes)
        while waiting:
            for index in list(waiting):
                node = self.nodes[index]
                assert node.process is not None, f"node {index} is not running"
                assert node.process.poll() is None, f"node {index} died:\n{node.log()[-5000:]}"
                status = node.status() if node.socket.exists() else {}
                if (
                    status.get("wsrep_ready") == "ON"
                    and status.get("wsrep_local_state_comment") == "Synced"
                    and status.get("wsrep_cluster_size") == str(cluster_size)
                ):
                    waiting.remove(index)
            if waiting:
                assert time.monotonic() < deadline, (
                    f"nodes {waiting} not Synced in a cluster of {cluster_size}:\n"
                    + "\n".join(self.nodes[i].log()[-3000:] for i in waiting)
                )
                time.sleep(0.1)

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        self._launch(0, bootstrap=True)
        self._wait_synced([0], 1)
        # One joiner at a time: a donor serves one SST at a time anyway.
        for index in range(1, self.size):
            self._launch(index, bootstrap=False)
            self._wait_synced([index], index + 1)
        self._wait_synced(list(range(self.size)), self.size)
        self._bootstrapped = True
        result = self.nodes[0].client("CREATE DATABASE IF NOT EXISTS test")
        assert result.returncode == 0, result.stderr
        # DDL is replicated in total order, but the others may apply it a moment later.
        for node in self.nodes:
            self._wait_for(node, "SHOW DATABASES LIKE 'test'", "test")

    def _wait_for(self, node: _Node, sql: str, expected: str, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while node.client(sql).stdout.strip() != expected:
            assert time.monotonic() < deadline, f"node {node.index}: {sql} never gave {expected}"
            time.sleep(0.05)

    def status(self, index: int) -> dict[str, str]:
        """Node `index`'s wsrep_* status variables ({} when it does not answer)."""
        return self.nodes[index].status()

    def log(self, index: int) -> str:
        """Node `index`'s error log, SST scripts' output included."""
        return self.nodes[index].log()

    def stop_node(self, index: int, *, crash: bool = False) -> None:
        """Stop one node: cleanly, or with crash by SIGKILL. Either way start_node() brings it
        back by IST while the others' gcache holds what it missed (by SST otherwise); after a
        crash the others first wait evs.suspect_timeout (5 s) before they let it in again."""
        node = self.nodes[index]
        if crash:
            node.kill()
        else:
            node.shut_down()

    def start_node(self, index: int) -> None:
        """Start a stopped node again and wait until it is Synced with all the running ones."""
        assert self._bootstrapped, "start() the cluster first"
        self._launch(index, bootstrap=False)
        running = [i for i, node in enumerate(self.nodes) if node.process is not None]
        self._wait_synced(running, len(running))

    def freeze_node(self, index: int) -> None:
        """SIGSTOP one node: the others see it vanish, its clients hang."""
        self.nodes[index].freeze()

    def thaw_node(self, index: int) -> None:
        self.nodes[index].thaw()

    def _leftovers(self) -> list[int]:
        """Processes still running with this cluster's directory on their command line."""
        mark = str(self.directory).encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if mark in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def stop(self) -> None:
        try:
            for node in self.nodes:
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    node.kill()
            for pid in self._leftovers():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
