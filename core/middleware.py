"""Project-wide middleware."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core.api import service_unavailable
from core.outages import database_unavailable


class DatabaseUnavailableMiddleware:
    """503 + Retry-After, not a 500, when a view outside DRF (back office, admin) finds
    the database unreachable. DRF views are answered by core.api.exception_handler;
    errors outside any view by core.api.handler500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if database_unavailable(exception):
            return service_unavailable(request, exception)
        return None
