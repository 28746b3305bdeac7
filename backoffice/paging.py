"""Numbered pages for the back-office lists: every list says how many rows match and
pages through them (nothing stops silently at one page).

Counting every match of a broad filter over millions of rows (every saga run, every
confirmed order) costs as much as reading them, on every page view: about 0.6 µs per
row even as an index-only scan, so 10,000 rows would cost twice the whole floor page.
So the big lists count at most COUNT_CAP + 1 rows (the selectors' `cap`): past
COUNT_CAP the page says "1,000+" — never a made-up exact number — and pages through
the first COUNT_CAP; a narrower filter gives the exact count again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PAGE_SIZE = 50
COUNT_CAP = 1_000  # rows a list counts exactly; past it, "1,000+"


@dataclass(frozen=True)
class Page:
    number: int
    size: int
    total: int
    query: str  # the other parameters of the request, url-encoded
    capped: bool = False  # more than `total` match (the count stopped at the cap)

    @property
    def total_text(self) -> str:
        """The total as the page says it: "10,000+" when the count was capped."""
        return f"{self.total:,}+" if self.capped else str(self.total)

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first(self) -> int:
        return self.offset + 1 if self.total else 0

    @property
    def last(self) -> int:
        return min(self.offset + self.size, self.total)

    @property
    def has_prev(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages

    def url(self, number: int) -> str:
        return f"?{self.query}&page={number}" if self.query else f"?page={number}"

    # For templates (which cannot pass arguments).
    @property
    def first_url(self) -> str:
        return self.url(1)

    @property
    def prev_url(self) -> str:
        return self.url(self.number - 1)

    @property
    def next_url(self) -> str:
        return self.url(self.number + 1)

    @property
    def last_url(self) -> str:
        return self.url(self.pages)


def page_of(request: Any, total: int, size: int = PAGE_SIZE, *, cap: int | None = None) -> Page:
    """The page the request asks for (?page=N), within 1..pages; a bad value is page 1.
    With `cap`, a `total` above it (a capped count: cap + 1) means "more than cap"."""
    capped = False
    if cap is not None and total > cap:
        capped, total = True, cap
    params = request.GET.copy()
    raw = params.pop("page", ["1"])[-1]
    try:
        number = int(raw)
    except (TypeError, ValueError):
        number = 1
    pages = max(1, -(-total // size))
    return Page(min(max(1, number), pages), size, total, params.urlencode(), capped)
