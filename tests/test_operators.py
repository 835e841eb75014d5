"""/metrics and /health/pool are closed by default: a token, or a setting that opens them."""

import httpx
import pytest

from catalog.config import Settings
from tests.helpers import assert_problem, only_on, serving

TOKEN = "t" * 40
PATHS = ("/metrics", "/health/pool")


def _settings(settings: Settings, **changes: object) -> Settings:
    return Settings(**{**settings.model_dump(), "metrics_public": False, **changes})


@only_on("sqlite", "postgresql")
async def test_operator_endpoints_are_closed_by_default(settings: Settings) -> None:
    async with serving(_settings(settings)) as (_, client):
        for path in PATHS:
            # Not even with a valid access token: those are for shoppers and staff.
            body = assert_problem(await client.get(path), 401)
            assert "CATALOG_METRICS_TOKEN" in body["detail"]
        # The probes an orchestrator needs stay open.
        assert (await client.get("/health/live")).status_code == 200
        assert (await client.get("/health/ready")).status_code == 200


@only_on("sqlite")
async def test_the_metrics_token_opens_them(settings: Settings) -> None:
    async with serving(_settings(settings, metrics_token=TOKEN)) as (_, client):
        for path in PATHS:
            assert_problem(await client.get(path), 401)
            wrong = {"Authorization": "Bearer " + "x" * 40}
            assert_problem(await client.get(path, headers=wrong), 401)
            right = {"Authorization": f"Bearer {TOKEN}"}
            assert (await client.get(path, headers=right)).status_code == 200


@only_on("sqlite")
async def test_metrics_public_opens_them_to_anyone(settings: Settings) -> None:
    async with serving(_settings(settings, metrics_public=True)) as (_, client):
        anonymous = httpx.Headers({"Authorization": ""})
        for path in PATHS:
            assert (await client.get(path, headers=anonymous)).status_code == 200


def test_a_short_metrics_token_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Settings(metrics_token="short")
