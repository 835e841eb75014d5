"""Who may read the operator endpoints (/metrics, /health/pool).

They show the pool's state, request counts by route and timings: useful to an attacker
timing a flood, so not public by default. A scraper sends `Authorization: Bearer
<CATALOG_METRICS_TOKEN>` (Prometheus: `authorization: {credentials_file: ...}`); with
no token configured nobody may, unless `CATALOG_METRICS_PUBLIC=true` says the port is
only reachable by operators. No database is touched, so they answer during an outage.
"""

import hmac
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from catalog.config import SettingsDep
from catalog.errors import UnauthorizedError

__all__ = ["OperatorsOnly"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="CATALOG_METRICS_TOKEN (not an access token)",
)


async def _operators_only(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if settings.metrics_public:
        return
    token = settings.metrics_token
    if token is None:
        raise UnauthorizedError(
            "Operator endpoints are closed: set CATALOG_METRICS_TOKEN and send it as a "
            "bearer token, or CATALOG_METRICS_PUBLIC=true."
        )
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise UnauthorizedError("This needs CATALOG_METRICS_TOKEN as a bearer token.")


OperatorsOnly = Depends(_operators_only)
