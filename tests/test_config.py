"""Settings and per-dialect engine options (no database needed)."""

import pytest
from pydantic import ValidationError

from catalog.config import Settings, normalize_database_url
from catalog.db.engine import engine_options


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///./x.db", "sqlite+inline:///./x.db"),
        ("sqlite+aiosqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
        ("postgresql://u:p@db/catalog", "postgresql+asyncpg://u:p@db/catalog"),
        ("postgres://u@db/catalog", "postgresql+asyncpg://u@db/catalog"),
        ("postgresql+psycopg://u@db/catalog", "postgresql+psycopg://u@db/catalog"),
        ("mysql://root@db/catalog", "mysql+asyncmy://root@db/catalog"),
        ("mariadb+aiomysql://root@db/catalog", "mariadb+aiomysql://root@db/catalog"),
        ("mssql://sa:pw@db/catalog", "mssql+aioodbc://sa:pw@db/catalog"),
        (
            "mssql+aioodbc://sa:pw@db/catalog?driver=ODBC+Driver+18+for+SQL+Server",
            "mssql+aioodbc://sa:pw@db/catalog?driver=ODBC+Driver+18+for+SQL+Server",
        ),
    ],
)
def test_database_urls_get_an_async_driver(given: str, expected: str) -> None:
    assert normalize_database_url(given) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg2://u@db/x", "not an asyncio driver"),
        ("mysql+pymysql://u@db/x", "not an asyncio driver"),
        ("oracle://u@db/x", "unsupported database"),
        ("not a url", "not a database URL"),
    ],
)
def test_unusable_database_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(database_url=url)


def test_settings_come_from_catalog_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOG_DATABASE_URL", "postgresql://u@db/x")
    monkeypatch.setenv("CATALOG_POOL_SIZE", "7")
    monkeypatch.setenv("CATALOG_POOL_TIMEOUT", "2.5")
    settings = Settings()
    assert settings.database_url == "postgresql+asyncpg://u@db/x"
    assert settings.pool_size == 7
    assert settings.pool_timeout == 2.5


def test_sqlite_waits_for_locks_instead_of_failing_at_once() -> None:
    options = engine_options(Settings(database_url="sqlite:///./x.db", sqlite_busy_timeout=3))
    assert options["connect_args"] == {"timeout": 3}
    assert options["pool_size"] == Settings().pool_size


def test_sqlite_in_memory_shares_one_connection() -> None:
    options = engine_options(Settings(database_url="sqlite://"))
    assert options["poolclass"].__name__ == "StaticPool"


def test_postgresql_names_its_sessions_and_bounds_connects() -> None:
    options = engine_options(
        Settings(database_url="postgresql://u@db/x", application_name="shop", connect_timeout=4)
    )
    assert options["connect_args"]["server_settings"]["application_name"] == "shop"
    assert options["connect_args"]["timeout"] == 4


def test_mariadb_uses_utf8mb4_and_utc() -> None:
    options = engine_options(Settings(database_url="mariadb://root@db/x"))
    assert options["connect_args"]["charset"] == "utf8mb4"
    assert "+00:00" in options["connect_args"]["init_command"]
    assert 0 < options["pool_recycle"] < 28800


def test_sql_server_is_accepted_with_its_own_options() -> None:
    # No SQL Server here: the options are checked, not a live connection.
    options = engine_options(Settings(database_url="mssql://sa:pw@db/catalog", connect_timeout=6))
    assert options["connect_args"] == {"timeout": 6}
    assert options["ignore_no_transaction_on_rollback"] is True
    assert options["pool_size"] == Settings().pool_size


def test_postgresql_sets_server_side_timeouts_and_a_client_bound() -> None:
    options = engine_options(
        Settings(
            database_url="postgresql://u@db/x", statement_timeout=12, idle_in_transaction_timeout=7
        )
    )
    server_settings = options["connect_args"]["server_settings"]
    assert server_settings["statement_timeout"] == "12000"
    assert server_settings["idle_in_transaction_session_timeout"] == "7000"
    assert options["connect_args"]["command_timeout"] > 12


def test_behind_a_transaction_pooler_nothing_outlives_a_transaction() -> None:
    settings = Settings(database_url="postgresql://u@bouncer/x", database_pooler="transaction")
    args = engine_options(settings)["connect_args"]
    # No prepared statement kept by asyncpg or by SQLAlchemy's dialect...
    assert args["statement_cache_size"] == 0
    assert args["prepared_statement_cache_size"] == 0
    # ...and none of the startup parameters PgBouncer refuses; the client bound stays.
    assert set(args["server_settings"]) == {"application_name", "timezone"}
    assert args["command_timeout"] == settings.statement_timeout + 5
    psycopg = engine_options(
        settings.model_copy(update={"database_url": "postgresql+psycopg://u@b/x"})
    )
    assert psycopg["connect_args"]["prepare_threshold"] is None
    assert "options" not in psycopg["connect_args"]


@pytest.mark.parametrize("url", ["sqlite:///./x.db", "mariadb://root@db/x"])
def test_the_pooler_setting_is_for_postgresql_only(url: str) -> None:
    with pytest.raises(ValidationError, match="CATALOG_DATABASE_POOLER is for PostgreSQL"):
        Settings(database_url=url, database_pooler="transaction")


def test_the_pooler_console_must_be_a_postgresql_url() -> None:
    with pytest.raises(ValidationError, match="postgresql:// URL"):
        Settings(pooler_admin_url="redis://bouncer:6432/pgbouncer")


@pytest.mark.parametrize(
    ("primary", "replica"),
    [
        ("postgresql://u@db/x", "mariadb://u@node2/x"),
        ("mariadb://u@node1/x", "postgresql://u@standby/x"),
        ("sqlite:///./x.db", "sqlite:///./y.db"),
    ],
)
def test_a_read_replica_is_of_the_primarys_kind(primary: str, replica: str) -> None:
    with pytest.raises(ValidationError, match="replica"):
        Settings(database_url=primary, read_database_url=replica)


def test_a_galera_node_may_be_named_mysql_or_mariadb() -> None:
    settings = Settings(database_url="mysql://u@node1/x", read_database_url="mariadb://u@node2/x")
    assert settings.read_database_url == "mariadb+asyncmy://u@node2/x"


def test_a_read_replica_is_one_server() -> None:
    with pytest.raises(ValidationError, match="one replica server"):
        Settings(
            database_url="postgresql://u@primary/x",
            read_database_url="postgresql://u@/x?host=standby1:5432&host=standby2:5432",
        )


def test_the_replicas_own_pooler_setting_is_for_postgresql() -> None:
    with pytest.raises(ValidationError, match="CATALOG_READ_DATABASE_POOLER"):
        Settings(
            database_url="mariadb://u@node1/x",
            read_database_url="mariadb://u@node2/x",
            read_database_pooler="transaction",
        )
    settings = Settings(
        database_url="postgresql://u@primary/x",
        read_database_url="postgresql://u@bouncer/x",
        read_database_pooler="transaction",
    )
    replica = settings.replica_settings()
    assert replica.database_url == "postgresql+asyncpg://u@bouncer/x"
    assert replica.database_pooler == "transaction"
    assert settings.database_pooler == "none"
