"""Input types that more than one domain accepts, each rule written once."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

__all__ = ["NO_CONTROL_CHARACTERS", "WHOLE_NUMBER", "UTCTimestamp", "as_utc"]

# Text on one line: no control character (a NUL, a newline, an escape sequence) that
# would end up in a log line, a header or a database that refuses it.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]+$"


def _whole_number(value: object) -> object:
    # JSON Schema counts 5.0 as an integer; "5", true and 5.5 are not.
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
