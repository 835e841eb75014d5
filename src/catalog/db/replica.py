"""A replica that serves reads: how far behind the primary it is, and whether a read
may go to it. A PostgreSQL hot standby, or another node of a MariaDB Galera cluster
than the one that takes the writes.

Bounded staleness: a `ReplicaMonitor` reads the primary's position and the replica's
every `interval` seconds (PostgreSQL: WAL replayed against WAL inserted; Galera: the
write-sets each node has committed, `wsrep_last_committed`), each on a connection of its
own. The replica's lag is the time since the last check whose primary position it has
reached: it has everything the primary had then. A replica that lags more than
`max_lag`, is behind every position seen (as at start, until a second check), cannot be
reached, or is no longer a replica (a promoted standby, a Galera node that is not
Synced) serves nothing until a later check finds it fit again.

Read-your-writes: the primary's position after a write's commit is that write's
consistency token. A read carrying a token goes to the replica only if the replica had
applied at least that far at the last check; else it goes to the primary.
"""

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from catalog.db.session import Reader

__all__ = ["ReplicaMonitor", "ReplicaState", "format_lsn", "parse_lsn"]

logger = logging.getLogger(__name__)

# A WAL position as PostgreSQL prints it: two hexadecimal 32-bit halves.
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


def parse_lsn(value: str) -> int | None:
    """The WAL position `value` ("16/B374D848") as a number, or None if it is not one."""
    match = _LSN.fullmatch(value.strip())
    if match is None:
        return None
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


# A Galera seqno: ASCII digits only (str.isdigit() also takes "²", which int() refuses).
_SEQNO = re.compile(r"[0-9]{1,18}")


def _parse_seqno(value: str) -> int | None:
    value = value.strip()
    return int(value) if _SEQNO.fullmatch(value) else None


def _galera_status(name: str) -> str:
    return (
        "(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS"
        f" WHERE VARIABLE_NAME = '{name}')"
    )


@dataclass(frozen=True)
class _Positions:
    """How one kind of replication says where a server is."""

    primary: TextClause  # the primary's position, as text
    replica: TextClause  # (is it a replica fit to read from, its position as text)
    parse: Callable[[str], int | None]
    unfit: str  # why a server that answers may not serve reads


_POSTGRESQL = _Positions(
    # The insert position: past the commit record of every transaction committed, also
    # with synchronous_commit=off (the write position may not have reached it yet).
    primary=text("SELECT pg_current_wal_insert_lsn()::text"),
    replica=text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"),
    parse=parse_lsn,
    unfit="not a standby (promoted?)",
)
_GALERA = _Positions(
    primary=text(f"SELECT {_galera_status('WSREP_LAST_COMMITTED')}"),
    replica=text(
        f"SELECT {_galera_status('WSREP_READY')} = 'ON'"
        f" AND {_galera_status('WSREP_LOCAL_STATE_COMMENT')} = 'Synced',"
        f" {_galera_status('WSREP_LAST_COMMITTED')}"
    ),
    parse=_parse_seqno,
    unfit="not a Synced Galera node",
)


@dataclass
class ReplicaState:
    """What the last check found, and what the routing did since the start."""

    usable: bool = False
    reason: str = "not checked yet"
    replayed: int = -1
    lag: float | None = None
    checks: int = 0
    # Reads routed, by where they went and why: "replica", "primary:token" (the
    # replica had not replayed the client's write yet), "primary:lag", "primary:down".
    routed: dict[str, int] = field(default_factory=dict)


class ReplicaMonitor:
    """Watches one standby against its primary; `choose()` routes one read."""

    def __init__(
        self,
        primary: Reader,
        standby: AsyncEngine,
        *,
        max_lag: float,
        interval: float,
        timeout: float,
    ) -> None:
        self.primary = primary
        self.standby = standby
        self._positions = _POSTGRESQL if standby.dialect.name == "postgresql" else _GALERA
        self.max_lag = max_lag
        self.interval = interval
        self.timeout = timeout
        self.state = ReplicaState()
        # Told of each routing decision and each check (catalog.metrics listens).
        self.on_route: Callable[[str], None] | None = None
        self.on_check: Callable[[ReplicaState], None] | None = None
        # (when, the primary's position) of the checks of the last max_lag + 2
        # intervals, oldest first, and the newest one before them.
        self._seen: deque[tuple[float, int]] = deque()

    async def commit_position(self, primary: Reader) -> str:
        """The primary's position now, read through `primary` (the app's pool): after a
        commit, the token of that write. ValueError if the primary gives none."""
        value = await primary.scalar_one(self._positions.primary)
        if value is None or self._positions.parse(str(value)) is None:
            raise ValueError(f"the primary gave no position: {value!r}")
        return str(value)

    async def unsupported(self) -> str | None:
        """Why this primary cannot be followed by position, or None if it can: a MariaDB
        or MySQL server whose replication is not Galera has no WSREP_LAST_COMMITTED
        (its binlog positions name no order across servers that a token could use)."""
        try:
            await self.commit_position(self.primary)
        except ValueError:
            if self._positions is _GALERA:
                return (
                    "CATALOG_READ_DATABASE_URL on MariaDB/MySQL needs a Galera cluster "
                    "(wsrep on, WSREP_LAST_COMMITTED set); this primary has none, as with "
                    "asynchronous binlog replication, which catalog cannot follow"
                )
            return "the primary gives no replication position"
        return None

    def parse_token(self, value: str) -> int | None:
        """The position a token names, or None if it is not a token of this kind."""
        return self._positions.parse(value)

    def choose(self, token: int | None) -> bool:
        """Whether this read, after a write at `token` (None: no write to see), may go
        to the standby; counts the decision."""
        state = self.state
        if not state.usable:
            where = "primary:lag" if state.reason.startswith("lagging") else "primary:down"
        elif token is not None and state.replayed < token:
            where = "primary:token"
        else:
            where = "replica"
        state.routed[where] = state.routed.get(where, 0) + 1
        if self.on_route is not None:
            self.on_route(where)
        return where == "replica"

    async def run(self) -> None:
        """Check every `interval` seconds until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self.interval)

    async def check(self) -> None:
        """Measure once and decide whether the replica may serve reads."""
        now = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                found = await self.primary.scalar_one(self._positions.primary)
        except Exception as error:
            # The primary's outage shows in the requests that write (503). The positions
            # seen so far still age, and the lag with them.
            logger.debug("no position from the primary: %r", error)
        else:
            if (primary := self._positions.parse(str(found or ""))) is not None:
                self._seen.append((now, primary))
        window = self.max_lag + 2 * self.interval
        while len(self._seen) >= 2 and self._seen[1][0] < now - window:
            self._seen.popleft()
        try:
            async with asyncio.timeout(self.timeout):
                async with self.standby.connect() as connection:
                    fit, replayed = (await connection.execute(self._positions.replica)).one()
        except Exception as error:  # whatever it is, do not read there
            self._set(usable=False, reason=f"unreachable ({type(error).__name__})", lag=None)
            return
        position = self._positions.parse(str(replayed or ""))
        if not fit or position is None:
            self._set(usable=False, reason=self._positions.unfit, lag=None)
            return
        # The position as found (not the highest ever seen): the server behind the URL
        # may have been replaced by one that is further behind.
        self.state.replayed = position
        # The replica has everything the primary had at the last check whose position it
        # has reached: its staleness is at most the time since then.
        reached = [when for when, seen in self._seen if seen <= position]
        if not reached:
            # Behind every position seen: since the start, or for longer than the window.
            since = now - self._seen[0][0] if self._seen else 0.0
            reason = f"lagging, behind every position of the last {since:.1f} s"
            self._set(usable=False, reason=reason, lag=None)
            return
        lag = now - reached[-1]
        if lag > self.max_lag:
            self._set(usable=False, reason=f"lagging {lag:.1f} s (max {self.max_lag:g} s)", lag=lag)
        else:
            self._set(usable=True, reason="streaming", lag=lag)

    def _set(self, *, usable: bool, reason: str, lag: float | None) -> None:
        state = self.state
        first = state.checks == 0
        state.checks += 1
        state.lag = lag
        if usable != state.usable or first:
            if usable and first:
                logger.info("public reads go to the read replica (%s)", reason)
            elif usable:
                logger.warning("the read replica serves reads again (lag %.1f s)", lag or 0.0)
            else:
                logger.warning("reads go to the primary: the read replica is %s", reason)
        state.usable = usable
        state.reason = reason
        if self.on_check is not None:
            self.on_check(state)
