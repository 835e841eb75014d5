"""What the app's start-up does for the process."""

import gc

from catalog.main import create_app
from tests.conftest import Backend
from tests.helpers import started


async def test_a_served_app_takes_its_long_lived_objects_out_of_the_collectors_reach(
    backend: Backend,
) -> None:
    gc.unfreeze()
    async with started(create_app(backend.settings())):
        # An app among others (the tests', an embedding application's) freezes nothing:
        # frozen objects are never freed.
        assert gc.get_freeze_count() == 0
    # As each worker of `catalog serve` runs it (catalog.main.served_app).
    async with started(create_app(backend.settings(), freeze_gc=True)):
        # Modules, the app and the engine: tens of thousands of objects that full
        # collections would otherwise walk on every pass, under load.
        assert gc.get_freeze_count() > 10_000
    gc.unfreeze()
