"""Sign-up, tokens, roles: every way a token can be wrong is a 401."""

import base64
import json
import statistics
import time

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import delete

from catalog.users.models import User
from tests.helpers import assert_problem, bearer, create_user, product_payload

NO_AUTH = {"Authorization": ""}


async def sign_up(
    client: httpx.AsyncClient, email: str, password: str = "correct horse"
) -> httpx.Response:
    return await client.post("/users", json={"email": email, "password": password}, headers=NO_AUTH)


async def token_for(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post(
        "/auth/token", data={"username": email, "password": password}, headers=NO_AUTH
    )


async def test_sign_up_returns_the_user_without_any_password(client: httpx.AsyncClient) -> None:
    response = await sign_up(client, "Ada@Example.com")

    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ada@example.com"
    assert body["role"] == "customer"
    assert "password" not in json.dumps(body)
    assert "hash" not in json.dumps(body)


async def test_an_email_taken_in_any_case_is_a_conflict(client: httpx.AsyncClient) -> None:
    await sign_up(client, "bob@example.com")
    assert_problem(await sign_up(client, "BOB@example.com"), 409)


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("not-an-email", "correct horse"),
        ("a@example.test", "correct horse"),  # a reserved domain never receives mail
        ("c@example.com", "short"),
        ("c@example.com", "x" * 129),  # over our limit: a 422, never a 500
        ("c@example.com", "x" * 60_000),  # far over, still within the body limit
    ],
)
async def test_bad_sign_ups_are_422(client: httpx.AsyncClient, email: str, password: str) -> None:
    assert_problem(await sign_up(client, email, password), 422)


async def test_a_signed_in_user_gets_a_bearer_token_and_sees_itself(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client, "carol@example.com", "correct horse")

    response = await token_for(client, "CAROL@example.com", "correct horse")

    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 900
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == "carol@example.com"


async def test_wrong_credentials_are_401_and_take_as_long_for_unknown_emails(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client, "dan@example.com", "correct horse")
    timings: dict[str, list[float]] = {"wrong password": [], "unknown email": []}
    for _ in range(3):
        for case, email in (
            ("wrong password", "dan@example.com"),
            ("unknown email", "eve@example.com"),
        ):
            started = time.perf_counter()
            response = await token_for(client, email, "wrong horse")
            timings[case].append(time.perf_counter() - started)
            body = assert_problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
            assert body["detail"] == "The email or the password is wrong."
    wrong, unknown = (statistics.median(values) for values in timings.values())
    # Both run one argon2 verification; without the dummy one, an unknown email would
    # answer in a fraction of the time.
    assert 0.5 < unknown / wrong < 2


async def test_me_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/me", headers=NO_AUTH)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def _forge(payload: dict[str, object], secret: str, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=algorithm)


def _unsigned(payload: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(
            lambda uid, s: _forge({"sub": str(uid), "exp": time.time() + 60}, "x" * 40),
            id="tampered-signature",
        ),
        pytest.param(
            lambda uid, s: _unsigned({"sub": str(uid), "exp": time.time() + 60}), id="alg-none"
        ),
        pytest.param(
            lambda uid, s: _forge({"sub": str(uid), "exp": time.time() - 1}, s), id="expired"
        ),
        pytest.param(lambda uid, s: _forge({"sub": str(uid)}, s), id="missing-exp"),
        pytest.param(lambda uid, s: _forge({"exp": time.time() + 60}, s), id="missing-sub"),
        pytest.param(
            lambda uid, s: _forge({"sub": "admin", "exp": time.time() + 60}, s), id="sub-not-an-id"
        ),
        pytest.param(lambda uid, s: "not.a.jwt", id="garbage"),
    ],
)
async def test_bad_tokens_are_401(
    app: FastAPI, client: httpx.AsyncClient, admin_id: int, make_token: object
) -> None:
    secret = app.state.settings.signing_secret.get_secret_value()
    token = make_token(admin_id, secret)  # type: ignore[operator]
    response = await client.post(
        "/products", json=product_payload(), headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 401)
    assert (await client.get("/products", params={"count": "exact"})).json()["total"] == 0


async def test_the_token_of_a_deleted_user_is_401(app: FastAPI, client: httpx.AsyncClient) -> None:
    engine = app.state.engine
    user_id = await create_user(engine, "gone@example.com")
    headers = bearer(user_id, app.state.settings)
    assert (await client.get("/users/me", headers=headers)).status_code == 200
    async with engine.begin() as connection:
        await connection.execute(delete(User).where(User.id == user_id))

    assert_problem(await client.get("/users/me", headers=headers), 401)


async def test_customers_may_not_change_the_catalog(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    product = (await client.post("/products", json=product_payload())).json()
    customer = bearer(await create_user(app.state.engine, "cust@example.com"), app.state.settings)

    assert_problem(
        await client.post("/products", json=product_payload("C-1"), headers=customer), 403
    )
    assert_problem(
        await client.patch(f"/products/{product['id']}", json={"stock": 0}, headers=customer), 403
    )
    assert_problem(await client.delete(f"/products/{product['id']}", headers=customer), 403)
    assert (await client.get(f"/products/{product['id']}")).json()["stock"] == 10
    # Reading needs no account at all.
    assert (await client.get(f"/products/{product['id']}", headers=NO_AUTH)).status_code == 200


async def test_a_username_with_a_nul_byte_is_422_not_500(client: httpx.AsyncClient) -> None:
    # Found by schemathesis: PostgreSQL refused the lookup of "a\x00b" with an error.
    assert_problem(await token_for(client, "a\x00b@example.com", "whatever"), 422)
