"""Settings, read from the environment with the `CATALOG_` prefix (and from `.env`)."""

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self, cast
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from babel.numbers import UnknownCurrencyError, validate_currency
from fastapi import Depends, Request
from limits import parse
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["Settings", "SettingsDep", "get_settings", "normalize_database_url"]

# The async driver used when a URL names only the database (`postgresql://...`), as
# hosting platforms hand them out. Any other async driver SQLAlchemy knows is accepted.
_DEFAULT_ASYNC_DRIVERS = {
    # catalog's own (catalog.db.sqlite): sqlite3 on the event loop, lock waits awaited.
    "sqlite": "inline",
    "postgresql": "asyncpg",
    "postgres": "asyncpg",
    "mysql": "asyncmy",
    "mariadb": "asyncmy",
    "mssql": "aioodbc",
}
_ASYNC_DRIVERS = {
    "sqlite": {"inline", "aiosqlite"},
    "postgresql": {"asyncpg", "psycopg", "psycopg_async"},
    "mysql": {"asyncmy", "aiomysql"},
    "mariadb": {"asyncmy", "aiomysql"},
    "mssql": {"aioodbc"},
}


def normalize_database_url(url: str) -> str:
    """Return `url` with an async driver, or raise ValueError saying what is accepted."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"not a database URL: {exc}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":  # Heroku-style alias
        backend = "postgresql"
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(
            f"unsupported database {backend!r}: use sqlite, postgresql, mysql, mariadb or mssql"
        )
    driver = driver or _DEFAULT_ASYNC_DRIVERS[backend]
    if driver not in _ASYNC_DRIVERS[backend]:
        accepted = ", ".join(f"{backend}+{name}" for name in sorted(_ASYNC_DRIVERS[backend]))
        raise ValueError(f"driver {driver!r} is not an asyncio driver; use one of: {accepted}")
    return parsed.set(drivername=f"{backend}+{driver}").render_as_string(hide_password=False)


PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]

# Secrets that are public, so anyone could sign tokens with them: the placeholder that
# earlier versions used by default (it is in this repository's history).
_PUBLIC_SECRETS = frozenset({"development-only-secret-do-not-use-in-production"})
_MIN_SECRET_BYTES = 32


def _check_secret(secret: str, where: str) -> None:
    if secret in _PUBLIC_SECRETS:
        raise ValueError(
            f"{where} holds a secret published in catalog's source, so anyone can sign "
            "tokens with it; remove it (a random key is then generated) or set a random one"
        )
    if len(secret.encode()) < _MIN_SECRET_BYTES:
        raise ValueError(
            f"{where} must be a random value of at least {_MIN_SECRET_BYTES} bytes "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )


def _read_key_file(path: Path) -> str:
    with path.open(encoding="utf-8") as file:
        mode = os.fstat(file.fileno()).st_mode
        if os.name == "posix" and mode & 0o077:
            raise ValueError(
                f"the key file {path} can be read by other users (mode {mode & 0o777:o}): "
                f"run `chmod 600 {path}`"
            )
        return file.read().strip()


def _create_key_file(path: Path) -> bool:
    """Write a new random key to `path` (mode 0600) unless it exists; True if this call
    wrote it. Safe when several workers start at once: one wins, all read its key."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, path)  # atomic, and fails if another process got there first
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    return True


class Settings(BaseSettings):
    """Every setting of the service; see the configuration table in README.md."""

    model_config = SettingsConfigDict(
        env_prefix="CATALOG_", env_file=".env", extra="ignore", frozen=True
    )

    # "production" never generates the signing key (see jwt_secret_file).
    environment: Literal["development", "test", "production"] = "development"

    database_url: str = "sqlite+inline:///./catalog.db"
    # "transaction" when database_url points at a pooler that lends server connections
    # per transaction (PgBouncer's pool_mode = transaction). PostgreSQL only. Every
    # statement then runs inside a transaction, no prepared statement outlives one, and
    # the server-side timeouts are not sent when connecting (PgBouncer refuses them):
    # set them where the pooler's server connections get them (docs/scale-out.md).
    database_pooler: Literal["none", "transaction"] = "none"
    # A replica of database_url for public reads (GET /products, one product, export,
    # search): a PostgreSQL hot standby, or another node of database_url's MariaDB
    # Galera cluster; unset, everything reads from database_url. Writes, and reads that
    # serve a write or a sign-in, always go to database_url. One server: not a list of
    # hosts, nor a name or balancer in front of several (the monitor must check the
    # server the reads reach). docs/scale-out.md has the guarantees.
    read_database_url: str | None = None
    # "transaction" when read_database_url is a PgBouncer in transaction mode (as
    # database_pooler is for database_url).
    read_database_pooler: Literal["none", "transaction"] = "none"
    # Bounded staleness: a standby further behind the primary than this many seconds,
    # or unreachable, serves no read until it catches up (checked every
    # replica_check_interval seconds); reads go to the primary meanwhile.
    replica_max_lag: PositiveSeconds = 5.0
    replica_check_interval: float = Field(default=0.5, ge=0.05, le=60)
    # The pooler's admin console, read to check the connection budget against its
    # limits (PgBouncer: postgresql://USER@HOST:6432/pgbouncer, USER one of its
    # stats_users or admin_users). Unset, the pooler's limits are not checked.
    pooler_admin_url: SecretStr | None = None

    # The key that signs access tokens and pagination cursors (HS256): at least 32
    # bytes, from a secret store, the same on every host. Unset, the key is read from
    # jwt_secret_file, which the first start creates with a random key (mode 0600) in
    # development and test; production refuses to start without one of the two, as
    # hosts that each generated their own key would reject each other's tokens. There
    # is no default key: nobody can compute the key of an install.
    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path = Path(".catalog-jwt-secret")
    # Seconds an access token stays valid.
    access_token_ttl: int = Field(default=900, ge=60, le=86_400)
    # Seconds a browser stays signed in without a page view (catalog.web): the session
    # cookie is renewed when a page is viewed in the second half of its life.
    browser_session_ttl: int = Field(default=3600, ge=60, le=30 * 86_400)
    # Seconds a browser stays signed in at most, however often its pages are viewed:
    # renewals never carry a session past this since its sign-in.
    browser_session_max_age: int = Field(default=86_400, ge=300, le=90 * 86_400)

    # A fixed pool, no overflow: SQLAlchemy closes an overflow connection as soon as it
    # comes back, so under steady load connections are opened and closed all the time.
    # Idle connections are reused most recent first, so light load opens few. A worker
    # holds at most 10, so 8 workers fit in PostgreSQL's default max_connections of 100.
    # docs/architecture.md ("The pool") has the measurements behind both defaults.
    pool_size: int = Field(default=10, ge=1, le=1000)
    max_overflow: int = Field(default=0, ge=0, le=1000)
    # Fail fast: a request that cannot get a connection within this many seconds gets
    # 503 + Retry-After, well before a client or proxy gives up (commonly 30-60 s).
    pool_timeout: PositiveSeconds = 5.0
    # Connections older than this are replaced on checkout. Half an hour is below
    # MariaDB/MySQL's default wait_timeout (8 h) and the idle timeouts of common
    # proxies and firewalls; -1 disables it (not accepted for MariaDB/MySQL).
    pool_recycle: int = Field(default=1800, ge=-1)
    # Off by default: a ping costs one extra round trip on every checkout. Instead, a
    # connection is pinged only when it sat idle in the pool longer than
    # pool_ping_after_idle seconds (0: never), so a busy pool pays nothing and a
    # connection that outlived a database restart in a quiet spell is replaced before
    # a request uses it. A connection that dies under load fails its request with 503,
    # and SQLAlchemy then replaces every connection opened before it.
    pool_pre_ping: bool = False
    pool_ping_after_idle: float = Field(default=1.0, ge=0, le=3600)

    # Worker processes sharing the database, each with its own pool: `catalog serve
    # --workers N` sets it; set it yourself when another process manager runs workers.
    workers: int = Field(default=1, ge=1, le=1024)
    # Connections left at the server for everything else (migrations, admin, other
    # services, PostgreSQL's superuser_reserved_connections).
    connection_reserve: int = Field(default=10, ge=0)
    # Refuse to start when workers x (pool_size + max_overflow) exceeds the server's
    # max_connections minus the reserve.
    connection_budget_check: bool = True

    # How long to wait for the database to accept a new connection.
    connect_timeout: PositiveSeconds = 5.0
    # Server-side safety nets, set on every connection where the dialect allows:
    # a statement running longer is cancelled by the server (PostgreSQL
    # statement_timeout, MariaDB max_statement_time), and the client stops waiting a
    # little later even if the server hangs; a session idle inside a transaction for
    # longer is ended by the server (PostgreSQL, MariaDB), so a stuck client can never
    # hold locks for long.
    statement_timeout: PositiveSeconds = 30.0
    idle_in_transaction_timeout: PositiveSeconds = 60.0
    # How long /health/ready waits for its round trip before answering 503.
    ready_timeout: PositiveSeconds = 2.0
    # SQLite waits this long for a lock held by another connection before failing.
    sqlite_busy_timeout: PositiveSeconds = 5.0
    # Sent to PostgreSQL so the service's sessions can be told apart in pg_stat_activity.
    application_name: str = Field(default="catalog", max_length=63)

    # On SIGTERM the server stops accepting, lets in-flight requests finish for up to
    # this many seconds, cancels what is left (their transactions roll back), then
    # closes every pooled connection. Keep it below the orchestrator's kill timeout
    # (Kubernetes: terminationGracePeriodSeconds, 30 s by default).
    shutdown_grace_period: PositiveSeconds = 20.0
    # Products read per connection checkout by /products/export.
    export_chunk_size: int = Field(default=1000, ge=1, le=100_000)
    # Exports a worker streams at once, and at once to one client address: each renders
    # every product on the event loop, so sixteen clients looping exports took reads
    # from 5 ms to 500 ms. Over the first, 503; over the second, 429 (Retry-After).
    max_exports: int = Field(default=2, ge=1, le=1000)
    max_exports_per_client: int = Field(default=1, ge=1, le=1000)
    # The origin clients reach the service at (`https://shop.example`), for absolute
    # links in Location and Link headers; unset, those are paths relative to the
    # service. Never taken from the request's Host header, which the client chooses.
    public_base_url: str | None = None
    # Proxies whose X-Forwarded-For/-Proto headers are believed (comma-separated IPs or
    # networks, `*` for any): the client address (rate limits) and scheme come from
    # them. Empty, the default: no forwarded header is believed, from anywhere.
    forwarded_allow_ips: str = ""
    # Who may read /metrics and /health/pool (catalog/operators.py): clients sending
    # this token as a bearer token (at least 32 bytes), or anyone when metrics_public.
    metrics_token: SecretStr | None = None
    metrics_public: bool = False
    # argon2 hashes (about 0.1 s of a core and 64 MiB each) that run at once in a
    # worker, and how many more may wait for a turn; beyond that, 503 at once.
    password_hash_concurrency: int = Field(default=2, ge=1, le=256)
    password_hash_queue: int = Field(default=8, ge=0, le=10_000)
    # Rate limits of POST /auth/token and POST /users ("N/second|minute|hour|day", empty
    # for none), counted in Redis when a URL is given (shared by every worker and host),
    # else in each worker's memory. Per account means per email address.
    rate_limit_storage_url: str = ""
    rate_limit_key_prefix: str = Field(default="catalog", min_length=1, max_length=64)
    rate_limit_login_per_address: str = "30/minute"
    # One account from one address: refused past it (429), so that guessing from one
    # address stops, while the account's owner elsewhere is not locked out.
    rate_limit_login_per_account_and_address: str = "10/minute"
    # One account from anywhere: past it, sign-ins to the account are not refused but
    # slowed: one at a time per worker, each after `rate_limit_login_slowdown` seconds.
    rate_limit_login_per_account: str = "10/minute"
    rate_limit_login_slowdown: float = Field(default=1.0, ge=0, le=60)
    rate_limit_signup_per_address: str = "20/hour"
    rate_limit_signup_per_account: str = "5/hour"
    # Larger request bodies are refused with 413 before they are read whole. The largest
    # body the API takes (a product with a 5,000-character description, every character
    # escaped as \uXXXX) is about 32 KiB; anything bigger only costs parsing time.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # The one larger body: a file the staff import from their page (catalog.web.staff).
    max_import_bytes: int = Field(default=50 * 2**20, ge=2**20)
    # A request line and headers larger than this are refused with 431 once that much
    # has arrived (catalog.serving; `catalog serve` only). Browsers send 1-8 KiB; a
    # proxy's own limit is usually 8-64 KiB.
    max_header_bytes: int = Field(default=32 * 1024, ge=4096, le=2**20)
    # Seconds a client has to send a request's head from when it connects or starts
    # the request, and may stay silent while it sends a body (catalog.serving).
    client_timeout: float = Field(default=20.0, gt=0, le=3600)
    # Log every SQL statement (development only: it is slow and verbose).
    echo_sql: bool = False

    # Log lines: "json" (one JSON object per line, for a log pipeline) or "text"
    # (readable lines); unset, json in production and text otherwise. Every line of a
    # request carries its request id (docs/operations.md).
    log_format: Literal["json", "text"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # One line per request: method, route template, status, duration, pool wait and
    # database time (never the query string, which may hold a secret).
    access_log: bool = True
    # Requests, and single statements, that take longer than this many seconds are
    # logged as warnings (a statement with its SQL, never its parameters); 0: never.
    slow_request_seconds: float = Field(default=1.0, ge=0, le=3600)
    slow_statement_seconds: float = Field(default=0.25, ge=0, le=3600)
    # OpenTelemetry traces (needs `pip install 'catalog[otel]'`): a span per request
    # with a child per SQL statement, exported over OTLP/HTTP to otlp_endpoint
    # (`http://collector:4318`) when set.
    tracing: bool = False
    otlp_endpoint: str | None = None
    # Browser front ends on other origins (CORS): the origins allowed (comma-separated,
    # `https://shop.example`; empty, the default: none), and what they may send.
    cors_allow_origins: str = ""
    cors_allow_methods: str = "GET, HEAD, POST, PATCH, DELETE"
    cors_allow_headers: str = (
        "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, "
        "X-Request-ID, Consistency-Token"
    )
    cors_max_age: int = Field(default=600, ge=0, le=86_400)
    # The shop's money, as the pages write it: an ISO 4217 currency, and the locale
    # (Babel's: en_US, de_DE, fr_CH...) whose grouping, decimal mark and currency sign
    # the prices are written with; the pages' price fields also take that decimal mark.
    # The API's prices stay decimal strings ("1234.50") in any locale.
    currency: str = "USD"
    locale: str = "en_US"
    # How long a worker reuses the categories and counts that the pages list, in
    # seconds (products.service.CategoryCache); 0 reads them for every page.
    categories_ttl: float = Field(default=2.0, ge=0, le=3600)
    # How long a worker reuses the count a results page shows for a search, in seconds
    # (products.service.CountCache): paging and re-sorting keep the filters, and a
    # search's count costs up to a scan of 1,000 matches. 0 counts for every page.
    result_counts_ttl: float = Field(default=10.0, ge=0, le=3600)
    # Cache-Control of public reads (products): by default a cache may keep them but
    # must ask again each time, which costs a 304 without a body when nothing changed.
    public_cache_control: str = Field(
        default="public, max-age=0, must-revalidate", min_length=1, max_length=200
    )

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        try:
            validate_currency(value)
        except UnknownCurrencyError:
            raise ValueError(f"{value!r} is not an ISO 4217 currency code, such as EUR") from None
        return value

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        try:
            Locale.parse(value)
        except (ValueError, UnknownLocaleError):
            raise ValueError(f"{value!r} is not a locale Babel knows, such as en_US") from None
        return value

    @field_validator("cors_allow_origins")
    @classmethod
    def _cors_origins(cls, value: str) -> str:
        # Starlette compares each entry character for character with the Origin header a
        # browser sends: scheme://host[:port], lower case, no default port, no path. An
        # entry of another form would match nothing, silently; so it is refused here, or
        # written the browser's way (case, default port).
        origins = []
        for entry in cls._comma_list(value):
            if entry == "*":
                origins.append(entry)
                continue
            url = urlsplit(entry)
            try:
                port = url.port
            except ValueError:
                port = -1
            if (
                not url.scheme
                or not url.hostname
                or "@" in url.netloc
                or port == -1
                or url.path
                or url.query
                or url.fragment
            ):
                raise ValueError(
                    f"{entry!r} is not an origin: give scheme://host[:port] such as "
                    "https://shop.example, with no path (not even a trailing /), or *"
                )
            scheme = url.scheme.lower()
            host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
            if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
                host = f"{host}:{port}"
            origins.append(f"{scheme}://{host}")
        if "*" in origins and len(origins) > 1:
            raise ValueError("* allows every origin: give it alone, or list the origins")
        return ", ".join(origins)

    @staticmethod
    def _comma_list(value: str) -> list[str]:
        return [part.strip() for part in value.split(",") if part.strip()]

    @property
    def cors_origins(self) -> list[str]:
        """The origins allowed by CORS; empty: no CORS at all."""
        return self._comma_list(self.cors_allow_origins)

    @property
    def cors_methods(self) -> list[str]:
        """The methods a front end on an allowed origin may use."""
        return [method.upper() for method in self._comma_list(self.cors_allow_methods)]

    @property
    def cors_headers(self) -> list[str]:
        """The request headers a front end on an allowed origin may send."""
        return self._comma_list(self.cors_allow_headers)

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("read_database_url")
    @classmethod
    def _read_replica(cls, value: str | None) -> str | None:
        if not value:
            return None
        url = normalize_database_url(value)
        hosts = make_url(url).query.get("host")
        if isinstance(hosts, tuple) and len(hosts) > 1:
            raise ValueError(
                "one replica server, not a list of hosts: reads must reach the server "
                "whose lag is checked"
            )
        if not url.startswith(("postgresql+", "mysql+", "mariadb+")):
            raise ValueError(
                "a read replica is a PostgreSQL hot standby or a MariaDB Galera node: "
                "use a postgresql:// or mariadb:// URL"
            )
        return url

    @field_validator("pooler_admin_url")
    @classmethod
    def _pooler_admin_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL of the pooler's admin database")
        return value

    @model_validator(mode="after")
    def _replica_of_the_same_kind(self) -> Self:
        if self.read_database_pooler != "none" and not (self.read_database_url or "").startswith(
            "postgresql+"
        ):
            raise ValueError("CATALOG_READ_DATABASE_POOLER is for a PostgreSQL read replica")
        # A MySQL/MariaDB URL may say either name; a replica is of the primary's kind.
        kinds = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
        if self.read_database_url and kinds.get(self.read_database_url.split("+")[0]) != kinds.get(
            self.database_url.split("+")[0]
        ):
            raise ValueError(
                "CATALOG_READ_DATABASE_URL must be a replica of CATALOG_DATABASE_URL: "
                "a PostgreSQL standby of a PostgreSQL primary, or a Galera node of "
                "the same cluster"
            )
        return self

    @model_validator(mode="after")
    def _pooler_needs_postgresql(self) -> Self:
        if self.database_pooler != "none" and not self.database_url.startswith("postgresql+"):
            raise ValueError(
                "CATALOG_DATABASE_POOLER is for PostgreSQL behind PgBouncer; "
                "CATALOG_DATABASE_URL is not a postgresql:// URL"
            )
        return self

    @field_validator(
        "rate_limit_login_per_address",
        "rate_limit_login_per_account_and_address",
        "rate_limit_login_per_account",
        "rate_limit_signup_per_address",
        "rate_limit_signup_per_account",
    )
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        if value.strip():
            try:
                parse(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a rate limit such as 10/minute or 100/hour"
                ) from None
        return value.strip()

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and urlsplit(value).scheme not in ("redis", "rediss", "redis+unix"):
            raise ValueError("must be a Redis URL (redis://host:6379/0, rediss://, redis+unix://)")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_secret(value.get_secret_value(), "CATALOG_METRICS_TOKEN")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if not value:
            return None
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
            raise ValueError("must be an origin such as https://shop.example (no query)")
        return value.rstrip("/")

    # The key in use and where it came from, resolved once when the settings are read.
    _signing_secret: SecretStr = PrivateAttr()
    _signing_secret_source: str = PrivateAttr()

    @model_validator(mode="after")
    def _resolve_signing_secret(self) -> Self:
        if self.jwt_secret is not None:
            secret, source = self.jwt_secret.get_secret_value(), "CATALOG_JWT_SECRET"
            _check_secret(secret, source)
        else:
            path = self.jwt_secret_file.expanduser().absolute()
            created = False
            if not path.exists():
                if self.environment == "production":
                    raise ValueError(
                        "CATALOG_ENVIRONMENT=production needs CATALOG_JWT_SECRET (the same "
                        f"random value on every host) or an existing key file at {path}"
                    )
                try:
                    created = _create_key_file(path)
                except OSError as error:
                    raise ValueError(
                        f"cannot create the key file {path} ({error.strerror}): set "
                        "CATALOG_JWT_SECRET, or CATALOG_JWT_SECRET_FILE to a writable path"
                    ) from None
            try:
                secret = _read_key_file(path)
            except OSError as error:
                raise ValueError(f"cannot read the key file {path} ({error.strerror})") from None
            _check_secret(secret, f"the key file {path}")
            source = f"the key file {path} ({'created now' if created else 'existing'})"
        self._signing_secret = SecretStr(secret)
        self._signing_secret_source = source
        return self

    def replica_settings(self) -> "Settings":
        """These settings with the read replica's URL and pooler, for its engines."""
        return self.model_copy(
            update={
                "database_url": self.read_database_url,
                "database_pooler": self.read_database_pooler,
            }
        )

    @property
    def signing_secret(self) -> SecretStr:
        """The key that signs access tokens and cursors: CATALOG_JWT_SECRET or the key file."""
        return self._signing_secret

    @property
    def signing_secret_source(self) -> str:
        """Where the signing key came from, to tell the operator at start."""
        return self._signing_secret_source


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()


async def _app_settings(request: Request) -> Settings:
    # The settings the app was built with (tests build apps with their own). `async`
    # although it never awaits: FastAPI would run a plain `def` in its thread pool.
    return cast(Settings, request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(_app_settings)]
