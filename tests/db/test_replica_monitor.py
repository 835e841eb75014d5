"""The replica monitor's arithmetic, on positions the test chooses (the drills on real
servers are in test_replicas.py and test_galera.py)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from catalog.db.replica import ReplicaMonitor, _parse_seqno, format_lsn, parse_lsn


class Servers:
    """A primary and a standby whose positions the test sets."""

    def __init__(self) -> None:
        self.primary = 100
        self.replayed = 100
        self.in_recovery = True
        self.dialect = SimpleNamespace(name="postgresql")

    async def scalar_one(self, _statement: object) -> str:  # the primary's Reader
        return format_lsn(self.primary)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Any]:  # the standby's engine
        servers = self

        class Connection:
            async def execute(self, _statement: object) -> Any:
                row = (servers.in_recovery, format_lsn(servers.replayed))
                return SimpleNamespace(one=lambda: row)

        yield Connection()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr("catalog.db.replica.time.monotonic", lambda: now[0])
    return now


def monitor(servers: Servers) -> ReplicaMonitor:
    return ReplicaMonitor(servers, servers, max_lag=5, interval=1, timeout=1)  # type: ignore[arg-type]


async def test_a_replica_behind_at_start_serves_nothing_until_it_is_known_to_be_close(
    clock: list[float],
) -> None:
    servers = Servers()
    servers.primary, servers.replayed = 10_000, 50  # hours behind, for all one look says
    watched = monitor(servers)
    await watched.check()
    assert not watched.state.usable
    assert watched.state.reason.startswith("lagging")
    assert not watched.choose(None)
    clock[0] += 1
    servers.replayed = 10_000  # it caught up with what the primary had at the first look
    servers.primary = 10_500
    await watched.check()
    assert watched.state.usable
    assert watched.state.lag == 1.0  # it has everything the primary had a second ago


async def test_the_lag_is_the_time_since_the_last_position_the_replica_reached(
    clock: list[float],
) -> None:
    servers = Servers()
    watched = monitor(servers)
    await watched.check()
    assert watched.state.usable
    assert watched.state.lag == 0
    for _ in range(7):  # the primary writes, the replica stops replaying
        clock[0] += 1
        servers.primary += 10
        await watched.check()
    assert not watched.state.usable
    assert watched.state.lag is None or watched.state.lag > 5
    assert not watched.choose(None)


async def test_a_token_beyond_the_replayed_position_reads_from_the_primary(
    clock: list[float],
) -> None:
    servers = Servers()
    watched = monitor(servers)
    await watched.check()
    assert watched.choose(100)
    assert not watched.choose(101)
    assert watched.state.routed == {"replica": 1, "primary:token": 1}


async def test_a_replica_further_behind_than_the_last_look_is_taken_at_its_word(
    clock: list[float],
) -> None:
    # Another server behind the URL, or a rebuilt standby: its position went back.
    servers = Servers()
    servers.primary = servers.replayed = 6_000
    watched = monitor(servers)
    await watched.check()
    clock[0] += 1
    servers.replayed = 2_000
    await watched.check()
    assert watched.state.replayed == 2_000
    assert not watched.choose(6_000)  # the write at 6,000 is not there: the primary


async def test_a_promoted_standby_serves_no_reads(clock: list[float]) -> None:
    servers = Servers()
    watched = monitor(servers)
    servers.in_recovery = False
    await watched.check()
    assert not watched.state.usable
    assert watched.state.reason == "not a standby (promoted?)"


def test_wal_positions_read_and_print_both_ways() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert format_lsn(parse_lsn("16/B374D848") or 0) == "16/B374D848"
    for bad in ("", "16", "16/", "/1", "G/1", "1/2/3", "123456789/1", " 1/1;"):
        assert parse_lsn(bad) is None, bad


@pytest.mark.parametrize("bad", ["²", "¹²", "³", "\u0661", "-1", "+1", "1.0", "", "9" * 19, "None"])
def test_a_galera_token_is_ascii_digits_or_nothing(bad: str) -> None:
    # str.isdigit() takes "²", which int() refuses: a 500 for anyone who sent it.
    assert _parse_seqno(bad) is None
    assert _parse_seqno(" 42 ") == 42
