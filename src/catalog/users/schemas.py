"""What the users and token API accepts and returns."""

import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from catalog.users.models import Role

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "Password",
    "Token",
    "UserCreate",
    "UserRead",
    "canonical_email",
]

# argon2 takes any length, but hashing megabytes per request would be a cheap denial of
# service: 8 to 128 characters.
MAX_PASSWORD_LENGTH = 128
Password = Annotated[str, Field(min_length=8, max_length=MAX_PASSWORD_LENGTH)]


def canonical_email(value: str) -> str:
    """The one form in which an email is stored and compared, on every database: NFKC
    (so look-alike compatibility characters and decomposed accents are one address),
    then email_validator's normal form (IDNA domain), lower-cased. Accents stay:
    renée@ and renee@ are two addresses. ValueError if it is not an address."""
    # Syntax, and no reserved names that can never receive mail (.test, .invalid,
    # localhost): stricter than JSON Schema's "email" format, on purpose. Whether a real
    # domain receives mail is not checked (no DNS lookups on sign-up).
    try:
        checked = validate_email(
            unicodedata.normalize("NFKC", value.strip()), check_deliverability=False
        )
    except EmailNotValidError as error:
        raise ValueError(f"is not a valid email address: {error}") from None
    return checked.normalized.lower()


Email = Annotated[
    str,
    Field(max_length=254),
    AfterValidator(canonical_email),
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "maxLength": 254,
            "description": "Reserved domains (.test, .invalid, localhost...) are refused",
        }
    ),
]


class UserCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "you@example.com", "password": "correct horse battery staple"}]
        },
    )

    email: Email
    password: Password


class UserRead(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "email": "you@example.com",
                    "role": "customer",
                    "created_at": "2025-01-15T09:30:00Z",
                }
            ]
        },
    )

    id: int
    email: str
    role: Role
    created_at: datetime


class Token(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIzIn0.sig",
                    "token_type": "bearer",
                    "expires_in": 900,
                }
            ]
        }
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the token expires")
