"""What the app's start-up does for the process."""

import gc

from tests.conftest import Backend
from tests.helpers import serving


async def test_start_up_takes_its_long_lived_objects_out_of_the_collectors_reach(
    backend: Backend,
) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    async with serving(backend.settings()) as (_app, client):
        # Modules, the app and the engine: tens of thousands of objects that full
        # collections would otherwise walk on every pass, under load.
        assert gc.get_freeze_count() > 10_000
        assert (await client.get("/health/live")).status_code == 200
    gc.unfreeze()
