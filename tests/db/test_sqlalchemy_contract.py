"""What catalog relies on in SQLAlchemy beyond its public API, pinned.

pyproject.toml admits SQLAlchemy from 2.0.36 to 2.1.x, and CI runs the whole suite on
both ends (.ci/run). Each name below is private to SQLAlchemy; docs/architecture.md
("SQLAlchemy internals") gives the measurement that keeps each one. When a release
breaks one of these tests, the test's first line names the catalog file to change.
"""

import inspect

from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.concurrency import await_only
from sqlalchemy.util.queue import Empty, Full, QueueCommon

from catalog.db import pool as catalog_pool
from catalog.db import sqlite as catalog_sqlite


def _no_connection() -> None:
    raise AssertionError("the pool connected, which these tests never ask it to")


def test_the_queue_pool_builds_its_idle_queue_from_queue_class() -> None:
    """Fix src/catalog/db/pool.py (FairQueue, installed as MeteredPool._queue_class)."""
    pool = catalog_pool.MeteredPool(_no_connection, pool_size=2, max_overflow=1)
    assert isinstance(pool._pool, catalog_pool.FairQueue)
    # The pool calls its queue through QueueCommon's interface; FairQueue has it all.
    interface = {name for name in vars(QueueCommon) if not name.startswith("_")}
    assert interface <= set(dir(catalog_pool.FairQueue)), interface - set(
        dir(catalog_pool.FairQueue)
    )
    # FairQueue raises these two, which the pool catches: Empty from a wait that timed
    # out (the pool's TimeoutError, a 503: tests/db/test_pool.py), Full from a put.
    assert (Empty, Full) == (catalog_pool.Empty, catalog_pool.Full)


def test_the_greenlet_bridge_is_where_catalog_imports_it() -> None:
    """Fix src/catalog/db/session.py (Reader: greenlet_spawn), src/catalog/db/sqlite.py and
    src/catalog/db/pool.py (await_only: awaiting inside SQLAlchemy's greenlet)."""
    assert inspect.iscoroutinefunction(greenlet_spawn)
    assert callable(await_only)


def test_the_asyncio_layer_soft_closes_cursors_the_way_sqlite_inline_answers() -> None:
    """Fix src/catalog/db/sqlite.py (_Cursor._async_soft_close): SQLAlchemy 2.1 awaits
    `cursor._async_soft_close()` after each execute on an asyncio engine; 2.0 does not."""
    soft_close = catalog_sqlite._Cursor._async_soft_close
    assert inspect.iscoroutinefunction(soft_close)
