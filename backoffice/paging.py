"""Numbered pages for the back-office lists: every list says how many rows match and
pages through all of them (nothing stops silently at one page)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PAGE_SIZE = 50


@dataclass(frozen=True)
class Page:
    number: int
    size: int
    total: int
    query: str  # the other parameters of the request, url-encoded

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


def page_of(request: Any, total: int, size: int = PAGE_SIZE) -> Page:
    """The page the request asks for (?page=N), within 1..pages; a bad value is page 1."""
    params = request.GET.copy()
    raw = params.pop("page", ["1"])[-1]
    try:
        number = int(raw)
    except (TypeError, ValueError):
        number = 1
    pages = max(1, -(-total // size))
    return Page(min(max(1, number), pages), size, total, params.urlencode())
