"""Pages for people: server-rendered HTML over the same services as the API.

`router` holds the pages, `static_files()` the assets they link to (mounted at
`STATIC_PATH`). Every page reads through the services, never the database directly.
"""

from catalog.web.pages import STATIC_PATH, static_files
from catalog.web.router import router

__all__ = ["STATIC_PATH", "router", "static_files"]
