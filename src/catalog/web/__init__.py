"""Pages for people: server-rendered HTML over the same services as the API.

`router` holds the pages, `static_files()` the assets they link to (mounted at
`STATIC_PATH`). Every page reads through the services, never the database directly.
"""

from fastapi import APIRouter

from catalog.web import account, operator, shop, staff
from catalog.web.operator import figure_history
from catalog.web.pages import STATIC_PATH, error_page, static_files
from catalog.web.router import router as browse

router = APIRouter()
router.include_router(browse)
router.include_router(account.router)
router.include_router(shop.router)
router.include_router(staff.router)
router.include_router(operator.pages)
router.include_router(operator.router)
IMPORT_PATH = staff.IMPORT_PATH

__all__ = [
    "IMPORT_PATH",
    "STATIC_PATH",
    "error_page",
    "figure_history",
    "router",
    "static_files",
]
