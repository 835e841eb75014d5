"""A PostgreSQL hot standby that serves reads: how far behind the primary it is, and
whether a read may go to it.

Bounded staleness: a `ReplicaMonitor` compares the standby's replay position with the
primary's WAL position every `interval` seconds. Its lag is how long ago the primary
first had WAL the standby has not replayed yet (0 when it has replayed everything the
primary had at the last check). A standby that lags more than `max_lag`, cannot be
reached, or is no longer in recovery (promoted) serves nothing until a later check
finds it fit again.

Read-your-writes: a write's commit position on the primary (`pg_current_wal_lsn()`
after the commit) is its consistency token. A read carrying a token goes to the
standby only if the standby had replayed at least that far at the last check; else
it goes to the primary.
"""

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import text
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


_PRIMARY_POSITION = text("SELECT pg_current_wal_lsn()::text")
_STANDBY_POSITION = text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")


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
        self.max_lag = max_lag
        self.interval = interval
        self.timeout = timeout
        self.state = ReplicaState()
        # Told of each routing decision and each check (catalog.metrics listens).
        self.on_route: Callable[[str], None] | None = None
        self.on_check: Callable[[ReplicaState], None] | None = None
        # (when, primary position) of checks whose position the standby had not
        # replayed at the last check, oldest first.
        self._ahead: deque[tuple[float, int]] = deque()

    async def commit_position(self) -> str:
        """The primary's WAL position now: after a commit, the token of that write."""
        return str(await self.primary.scalar_one(_PRIMARY_POSITION))

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
        """Measure once and decide whether the standby may serve reads."""
        now = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                primary = parse_lsn(await self.primary.scalar_one(_PRIMARY_POSITION) or "")
            if primary is not None and (not self._ahead or self._ahead[-1][1] < primary):
                self._ahead.append((now, primary))
        except Exception as error:
            # The primary's outage shows in the requests that write (503). The positions
            # seen so far still age, and the lag with them.
            logger.debug("no WAL position from the primary: %r", error)
        try:
            async with asyncio.timeout(self.timeout):
                async with self.standby.connect() as connection:
                    in_recovery, replayed = (await connection.execute(_STANDBY_POSITION)).one()
        except Exception as error:  # whatever it is, do not read there
            self._set(usable=False, reason=f"unreachable ({type(error).__name__})", lag=None)
            return
        position = parse_lsn(replayed or "")
        if not in_recovery or position is None:
            self._set(usable=False, reason="not a standby (promoted?)", lag=None)
            return
        self.state.replayed = max(self.state.replayed, position)
        while self._ahead and self._ahead[0][1] <= position:
            self._ahead.popleft()
        lag = now - self._ahead[0][0] if self._ahead else 0.0
        if lag > self.max_lag:
            self._set(usable=False, reason=f"lagging {lag:.1f} s (max {self.max_lag:g} s)", lag=lag)
        else:
            self._set(usable=True, reason="streaming", lag=lag)

    def _set(self, *, usable: bool, reason: str, lag: float | None) -> None:
        state = self.state
        state.checks += 1
        state.lag = lag
        if usable != state.usable:
            if usable:
                logger.warning("the read replica serves reads again (lag %.1f s)", lag or 0.0)
            else:
                logger.warning("reads go to the primary: the read replica is %s", reason)
        state.usable = usable
        state.reason = reason
        if self.on_check is not None:
            self.on_check(state)
