"""Rate limits on sign-in and sign-up, per client address and per account.

Counters live in Redis when `CATALOG_RATE_LIMIT_STORAGE_URL` names one, so every worker
and every host counts against the same limit; otherwise in this process (each worker
then allows the limit on its own). Built on the `limits` library's moving window.

A limit that is reached is a 429 problem with Retry-After, answered before any password
is hashed or any connection is borrowed.

When Redis fails (down, or slower than its 0.25 s timeout), each worker counts in its own
memory instead, as it does without Redis, and logs that once; it asks Redis again after
5 s, so that a hanging Redis costs one timeout per 5 s per worker, not one per sign-in.
The limits then hold per worker rather than across them: looser, never off.
"""

import asyncio
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from redis.asyncio import ConnectionPool
from starlette.requests import Request

from catalog.config import Settings
from catalog.errors import ServiceUnavailableError, TooManyRequestsError

__all__ = ["RateLimits", "Slots", "client_address"]

logger = logging.getLogger(__name__)


def client_address(request: Request) -> str:
    """Who is asking, as one rate-limit bucket: the IPv4 address, or the IPv6 /64 (one
    host usually has a whole /64 to pick addresses from)."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# Sign-ins to one account that may wait their turn in one worker, past its limit.
_MOST_WAITING = 32
# Seconds a call to Redis may take, and after which a failed Redis is asked again.
_REDIS_TIMEOUT = 0.25
_REDIS_RETRY = 5.0


@dataclass(frozen=True)
class _Rule:
    name: str
    item: RateLimitItem | None  # None: not limited


def _rule(name: str, limit: str) -> _Rule:
    return _Rule(name, parse(limit) if limit else None)


class RateLimits:
    """The service's rate limits, checked by the routes they guard."""

    def __init__(self, settings: Settings) -> None:
        self._storage: Storage
        self._redis: ConnectionPool | None = None
        if settings.rate_limit_storage_url:
            # Our own connection pool, so that the app can close it when it stops.
            self._redis = ConnectionPool.from_url(
                settings.rate_limit_storage_url,
                # A Redis that hangs must not hang sign-ins: a counter answers in well
                # under a millisecond when it is well.
                socket_timeout=_REDIS_TIMEOUT,
                socket_connect_timeout=_REDIS_TIMEOUT,
            )
            self._storage = storage_from_string(  # type: ignore[assignment]
                "async+" + settings.rate_limit_storage_url,
                implementation="redispy",
                connection_pool=self._redis,  # type: ignore[arg-type]
                key_prefix=settings.rate_limit_key_prefix,
                wrap_exceptions=True,
            )
        else:
            self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        # Counts in this process while Redis fails; Redis is asked again from then on.
        self._fallback = MovingWindowRateLimiter(MemoryStorage())
        self._redis_again_at = 0.0
        self._redis_failing = False
        self._login_address = _rule("login-address", settings.rate_limit_login_per_address)
        self._login_pair = _rule(
            "login-account-address", settings.rate_limit_login_per_account_and_address
        )
        self._login_account = _rule("login-account", settings.rate_limit_login_per_account)
        self._slowdown = settings.rate_limit_login_slowdown
        # Sign-ins past their account's limit, per account: the lock they take turns
        # on, and how many wait for it.
        self._slowed: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._signup_address = _rule("signup-address", settings.rate_limit_signup_per_address)
        self._signup_account = _rule("signup-account", settings.rate_limit_signup_per_account)

    async def aclose(self) -> None:
        """Close the connections to Redis, if any (when the app stops)."""
        if self._redis is not None:
            await self._redis.disconnect()

    async def sign_in(self, request: Request, account: str, *, known_device: bool = False) -> None:
        """Count a sign-in attempt of `account` from the request's client: 429 past the
        limit of the address, or of the account from this address; past the account's
        own limit, the attempt waits its turn instead (OWASP: lock out an address, slow
        an account down; never lock its owner out from elsewhere). A `known_device`, a
        browser that signed in to the account before, skips that turn: a flood on the
        account from elsewhere neither slows nor refuses its owner there."""
        address = client_address(request)
        await self._hit(self._login_address, address)
        await self._hit(self._login_pair, f"{account} {address}")
        if known_device:
            return
        if await self._retry_after(self._login_account, account) is not None:
            await self._slow_down(account)

    async def _slow_down(self, account: str) -> None:
        # One attempt at a time per account in this worker, each after the slowdown: a
        # guessing rate of one a second, spread over as many addresses as the attacker
        # has, and the owner's attempt waits behind those queued before it. Past
        # _MOST_WAITING queued, refused: the memory of a flood stays bounded.
        lock, waiting = self._slowed.setdefault(account, (asyncio.Lock(), [0]))
        if waiting[0] >= _MOST_WAITING:
            raise TooManyRequestsError(
                "Too many sign-ins to this account at once; retry in a minute.", retry_after=60
            )
        waiting[0] += 1
        try:
            async with lock:
                await asyncio.sleep(self._slowdown)
        finally:
            waiting[0] -= 1
            if not waiting[0]:
                del self._slowed[account]

    async def sign_up(self, request: Request, account: str) -> None:
        """Count a sign-up of `account` from the request's client; 429 if over."""
        await self._hit(self._signup_address, client_address(request))
        await self._hit(self._signup_account, account)

    def _chosen(self) -> MovingWindowRateLimiter:
        if self._redis is not None and time.monotonic() < self._redis_again_at:
            return self._fallback
        return self._limiter

    def _redis_failed(self, error: StorageError) -> None:
        self._redis_again_at = time.monotonic() + _REDIS_RETRY
        if not self._redis_failing:
            self._redis_failing = True
            logger.warning(
                "rate limits: Redis failed (%s); counting in this worker until it answers",
                error,
            )

    async def _hit(self, rule: _Rule, who: str) -> None:
        retry_after = await self._retry_after(rule, who)
        if retry_after is not None:
            assert rule.item is not None
            raise TooManyRequestsError(
                f"Too many attempts ({rule.item}, per {rule.name.split('-', 1)[1]}); "
                f"retry in {retry_after} s.",
                retry_after=retry_after,
            )

    async def _retry_after(self, rule: _Rule, who: str) -> int | None:
        """Count one attempt of `who` under `rule`: None if within the limit, else the
        seconds until it would be."""
        if rule.item is None:
            return None
        limiter = self._chosen()
        try:
            allowed = await limiter.hit(rule.item, rule.name, who)
            if not allowed:
                stats = await limiter.get_window_stats(rule.item, rule.name, who)
        except StorageError as error:
            self._redis_failed(error)
            limiter = self._fallback
            allowed = await limiter.hit(rule.item, rule.name, who)
            if not allowed:
                stats = await limiter.get_window_stats(rule.item, rule.name, who)
        else:
            if limiter is self._limiter and self._redis_failing:
                self._redis_failing = False
                logger.warning("rate limits: Redis answers again; counting there")
        if allowed:
            return None
        return max(1, math.ceil(stats.reset_time - time.time()))


class Slots:
    """At most `total` of something at once in this worker, and at most `per_client`
    of them for one client address: long work (an export) that one client, or a
    handful, could otherwise run as often as they like."""

    def __init__(self, what: str, *, total: int, per_client: int) -> None:
        self.what = what
        self.total = total
        self.per_client = per_client
        self.in_use = 0
        self._by_client: dict[str, int] = {}

    def take(self, request: Request) -> Callable[[], None]:
        """A slot for the request's client, and the function that gives it back (once,
        however often it is called); 429 when the client has its share running, 503
        when the worker has all it runs."""
        who = client_address(request)
        if self._by_client.get(who, 0) >= self.per_client:
            raise TooManyRequestsError(
                f"This client already has {self.per_client} {self.what} running; "
                "retry when it has ended.",
                retry_after=5,
            )
        if self.in_use >= self.total:
            raise ServiceUnavailableError(
                f"This server already runs {self.total} {self.what}; retry shortly.",
                retry_after=5,
            )
        self.in_use += 1
        self._by_client[who] = self._by_client.get(who, 0) + 1
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if given_back:
                return
            given_back = True
            self.in_use -= 1
            left = self._by_client[who] - 1
            if left:
                self._by_client[who] = left
            else:
                del self._by_client[who]

        return give_back
