"""The key that signs tokens and cursors: nobody can compute the key of an install."""

import base64
import hashlib
import hmac
import json
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import pytest
from pydantic import ValidationError

from catalog.config import Settings
from catalog.products.schemas import ProductFilters, ProductSort
from tests.helpers import assert_problem, product_payload

# The constant that earlier versions signed with by default: it is public, in git history.
OLD_PLACEHOLDER = "development-only-secret-do-not-use-in-production"


def test_a_new_install_generates_a_private_random_key_and_keeps_it(tmp_path: Path) -> None:
    key_file = tmp_path / "key"

    first = Settings(jwt_secret_file=key_file)
    second = Settings(jwt_secret_file=key_file)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first.signing_secret.get_secret_value()) >= 32
    assert second.signing_secret == first.signing_secret
    assert "created now" in first.signing_secret_source
    assert "existing" in second.signing_secret_source
    assert Settings(jwt_secret_file=tmp_path / "other").signing_secret != first.signing_secret


def test_workers_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(
            pool.map(
                lambda _: Settings(jwt_secret_file=key_file).signing_secret.get_secret_value(),
                range(16),
            )
        )
    assert len(keys) == 1
    assert [path.name for path in tmp_path.iterdir()] == ["key"]  # no temporary files left


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k" * 48)
    key_file.chmod(0o644)
    with pytest.raises(ValidationError, match="chmod 600"):
        Settings(jwt_secret_file=key_file)


@pytest.mark.parametrize("environment", ["development", "test", "production"])
def test_the_old_public_placeholder_and_short_secrets_are_refused_everywhere(
    environment: str, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="published in catalog's source"):
        Settings(environment=environment, jwt_secret=OLD_PLACEHOLDER)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(environment=environment, jwt_secret="short")  # type: ignore[arg-type]
    key_file = tmp_path / "key"
    key_file.write_text(OLD_PLACEHOLDER)
    key_file.chmod(0o600)
    with pytest.raises(ValidationError, match="published in catalog's source"):
        Settings(environment=environment, jwt_secret_file=key_file)  # type: ignore[arg-type]


def test_production_never_generates_a_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    with pytest.raises(ValidationError, match="CATALOG_JWT_SECRET"):
        Settings(environment="production", jwt_secret_file=key_file)
    assert not key_file.exists()
    given = Settings(environment="production", jwt_secret="s" * 48)
    assert given.signing_secret.get_secret_value() == "s" * 48
    assert given.signing_secret_source == "CATALOG_JWT_SECRET"


async def test_a_token_signed_with_the_old_placeholder_is_refused(
    client: httpx.AsyncClient,
) -> None:
    for user_id in range(1, 4):
        forged = jwt.encode({"sub": str(user_id), "exp": int(time.time()) + 600}, OLD_PLACEHOLDER)
        response = await client.post(
            "/products", json=product_payload(), headers={"Authorization": f"Bearer {forged}"}
        )
        assert_problem(response, 401)
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 0


async def test_a_cursor_signed_with_the_old_placeholder_is_refused(
    client: httpx.AsyncClient,
) -> None:
    # A cursor for the first page by id, as pagination.encode_cursor made it with the
    # old default key: right in every way but the key.
    key = hmac.new(OLD_PLACEHOLDER.encode(), b"catalog pagination cursor", hashlib.sha256).digest()
    scope = hashlib.sha256(ProductFilters().scope(ProductSort.ID).encode()).hexdigest()[:16]
    body = json.dumps({"q": scope, "p": [1, 1]}, separators=(",", ":")).encode()
    signature = hmac.new(key, body, hashlib.sha256).digest()[:16]

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    response = await client.get("/products", params={"cursor": f"{b64(body)}.{b64(signature)}"})
    assert assert_problem(response, 400)["detail"] == "The cursor is not one this service made."
