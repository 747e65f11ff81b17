"""The hosts table: its query parameters, checked, and the rows they select.

An error names the parameter and what it accepts, never echoes what was sent.

Filtering, sorting and pagination happen on the hub, in the database where it can
(hub.portal.host_listing), so a browser never receives 10,000 rows; a bad parameter is a
ListingError naming it (a 400 page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PAGE_SIZE = 50
MAX_PAGE = 1_000_000
MAX_SEARCH = 100
FILTERS = ("all", "stale", "noncompliant")
SORTS = ("host", "last_seen", "compliant", "reports", "address")


class ListingError(ValueError):
    """A query parameter out of range; the message names it."""


class PastLastPage(ListingError):
    """A page number beyond the last page (a 404, not a malformed request)."""


@dataclass(frozen=True)
class HostQuery:
    search: str = ""
    filter: str = "all"
    hub: str = ""
    sort: str = "host"
    descending: bool = False
    page: int = 1

    def params(self, **change: Any) -> dict[str, str]:
        """This query's parameters (for links), with some changed."""
        values = {
            "q": self.search,
            "filter": self.filter,
            "hub": self.hub,
            "sort": self.sort,
            "order": "desc" if self.descending else "asc",
            "page": str(self.page),
        }
        values.update({k: str(v) for k, v in change.items()})
        return {k: v for k, v in values.items() if v}


def parse_query(params: Mapping[str, str], hubs: list[str]) -> HostQuery:
    search = params.get("q", "").strip()
    if len(search) > MAX_SEARCH:
        raise ListingError(f"q: at most {MAX_SEARCH} characters")
    chosen = params.get("filter", "all") or "all"
    if chosen not in FILTERS:
        raise ListingError(f"filter: one of {', '.join(FILTERS)}")
    hub = params.get("hub", "")
    if hub and hub not in hubs:
        raise ListingError(f"hub: one of {', '.join(hubs)}")
    sort = params.get("sort", "host") or "host"
    if sort not in SORTS:
        raise ListingError(f"sort: one of {', '.join(SORTS)}")
    order = params.get("order", "asc") or "asc"
    if order not in ("asc", "desc"):
        raise ListingError("order: asc or desc")
    page_text = params.get("page", "1") or "1"
    if not page_text.isdigit() or len(page_text) > 7 or not 1 <= int(page_text) <= MAX_PAGE:
        raise ListingError(f"page: a whole number from 1 to {MAX_PAGE}")
    return HostQuery(search, chosen, hub, sort, order == "desc", int(page_text))
