"""Input types that more than one domain accepts, each rule written once."""

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

__all__ = [
    "NO_CONTROL_CHARACTERS",
    "WHOLE_NUMBER",
    "JSONNumber",
    "UTCTimestamp",
    "as_utc",
    "in_words",
]

# Text on one line: no control character (a NUL, a newline, an escape sequence) that
# would end up in a log line, a header or a database that refuses it.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]+$"


class JSONNumber(Decimal):
    """A JSON number with a fraction or an exponent, as the body wrote it (catalog.jsonbody
    reads them so, never as a float that rounds)."""


def _whole_number(value: object) -> object:
    # JSON Schema counts 5.0 as an integer; "5", true and 5.5 are not, and neither is
    # 0.99999999999999999999, which a float would round to 1.
    if isinstance(value, JSONNumber):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        raise ValueError("must be a whole number")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number (not a string or a boolean)")
    return value


# An integer in a JSON body, strictly: pydantic's lax mode would take "5" and true.
# Written after the bounds (`Annotated[int, Field(ge=..), WHOLE_NUMBER]`), so that the
# bounds stay in the JSON Schema.
WHOLE_NUMBER = BeforeValidator(_whole_number)


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC (a time without an offset is taken as UTC, the zone every
    timestamp here is in); ValueError if it falls outside the years 1 to 9999 there,
    which no database column and no Python datetime can hold."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the years 1 to 9999 once converted to UTC") from None


UTCTimestamp = Annotated[datetime, AfterValidator(as_utc)]


# The kinds of error that say a value does not have the form a field asks for: a
# field's own words (`hints`) say what that form is better than pydantic can.
_FORM_ERRORS = frozenset({"string_pattern_mismatch", "value_error"})
_NUMBER_ERRORS = frozenset({"int_parsing", "int_type", "int_from_float"})


def in_words(error: Mapping[str, Any], hints: Mapping[str, str] | None = None) -> str:
    """A validation error (one of pydantic's `errors()`) as a person reads it: what is
    wrong and what is wanted, without a regular expression or a validator's terms
    ("String should match pattern '^[^ \\x00-...'"). `hints` says, per field, what the
    field's form is. Lower case, no final period: "Price: " goes before it."""
    kind = str(error["type"])
    context = error.get("ctx") or {}
    field = next(
        (str(part) for part in reversed(error.get("loc", ())) if isinstance(part, str)), ""
    )
    hint = (hints or {}).get(field)
    if hint is not None and (kind in _FORM_ERRORS or kind.startswith("decimal")):
        return hint
    if kind == "missing":
        return "is missing"
    if kind == "string_too_short":
        least = int(context.get("min_length", 1))
        return "is empty" if least <= 1 else f"is too short: at least {least} characters"
    if kind == "string_too_long":
        return f"is too long: at most {int(context.get('max_length', 0)):,} characters"
    if kind == "string_pattern_mismatch":
        return "holds a character it cannot: a line break, a tab or another control character"
    if kind in _NUMBER_ERRORS:
        return "is not a whole number"
    if kind == "greater_than_equal":
        return f"must be {context.get('ge')} or more"
    if kind == "less_than_equal":
        return f"must be {context.get('le')} or less"
    if kind.startswith(("datetime", "date_")):
        return "is not a date: write it like 2025-01-31"
    if kind.startswith("bool"):
        return "must be yes or no (true or false)"
    if kind == "extra_forbidden":
        return "is not a field this takes"
    if kind == "value_error":
        return str(context.get("error") or error.get("msg", "is not valid"))
    message = str(error.get("msg", "is not valid"))
    return message[:1].lower() + message[1:]
