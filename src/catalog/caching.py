"""HTTP caching: entity tags in conditional headers, 304s, and responses kept private.

One parser reads `If-Match` and `If-None-Match` (RFC 9110 section 13.1): `*`, or a list
of entity tags, each strong (`"3"`) or weak (`W/"3"`). What each header then compares
differs: If-Match compares strongly (a weak tag matches nothing; catalog.products.service),
If-None-Match weakly (section 13.1.2: `W/"3"` matches `"3"`), here.
"""

import re
from dataclasses import dataclass

from starlette.responses import Response

__all__ = ["PRIVATE", "EntityTag", "entity_tags", "keep_private", "none_match", "not_modified"]

# What a response that depends on who asks (its Authorization header) carries: no cache,
# a browser's included, keeps it. `Vary: Authorization` as well, for a cache that
# ignores no-store.
PRIVATE = "no-store"

# One list member: an entity tag (RFC 9110 section 8.8.3: opaque-tag = DQUOTE *etagc
# DQUOTE, etagc = %x21 / %x23-7E / obs-text, so a tag may hold a comma) followed by the
# end or a comma, else anything up to the next comma, which is skipped: a malformed
# member matches nothing. Header values arrive decoded as latin-1, so obs-text is
# \x80-\xff here.
_MEMBER = re.compile(r'[ \t]*(?:(W/)?("[\x21\x23-\x7e\x80-\xff]*")[ \t]*(?=,|$)|[^,]*)(?:,|$)')


@dataclass(frozen=True, slots=True)
class EntityTag:
    opaque: str  # with its quotes, as an ETag header carries it: '"3"'
    weak: bool


def entity_tags(header: str) -> list[EntityTag] | None:
    """The well-formed entity tags of an If-Match or If-None-Match value; None for `*`."""
    if header.strip(" \t") == "*":
        return None
    return [
        EntityTag(match.group(2), weak=match.group(1) is not None)
        for match in _MEMBER.finditer(header)
        if match.group(2) is not None
    ]


def none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether If-None-Match lets a GET or HEAD of the representation tagged `etag` (a
    strong tag, as catalog sends them) proceed; when not, the answer is 304 (RFC 9110
    section 13.1.2: weak comparison, and `*` matches any current representation)."""
    if if_none_match is None:
        return True
    tags = entity_tags(if_none_match)
    return tags is not None and all(tag.opaque != etag for tag in tags)


def not_modified(headers_of: Response) -> Response:
    """A 304 with no body and the headers set on `headers_of` (a route's `response`):
    RFC 9110 section 15.4.5 asks for the ETag, Cache-Control and Vary that the 200
    would carry, and the route has set exactly those."""
    response = Response(status_code=304)
    response.headers.raw.extend(headers_of.headers.raw)
    return response


def keep_private(response: Response) -> None:
    """Mark `response` as depending on the Authorization header: stored by no cache."""
    response.headers["Cache-Control"] = PRIVATE
    response.headers.add_vary_header("Authorization")
