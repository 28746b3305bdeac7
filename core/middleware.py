"""Project-wide middleware: the request's id, metrics and log line (outermost), and a
503 + Retry-After instead of a 500 when the database is unreachable."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from core.api import service_unavailable
from core.outages import database_unavailable

from . import logs, metrics

log = logging.getLogger("concord.request")

UNMATCHED = "<unmatched>"


def _route(request: HttpRequest) -> str:
    """The URL pattern that answered (e.g. `api/v1/orders/<int:order_id>/`), never the
    path itself: ids in label values would make a new time series per order."""
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else UNMATCHED


class RequestObservabilityMiddleware:
    """Binds `request_id` (the caller's X-Request-Id when it is a sane one, else a new
    one) for every log line of the request, answers with it in X-Request-Id, counts
    the request by route and status, and logs one line when it is answered."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Threads of a web worker serve one request after another: start clean.
        logs.clear()
        request_id = logs.clean_request_id(request.headers.get(logs.REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        logs.bind(request_id=request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            seconds = time.perf_counter() - started
            route = _route(request)
            metrics.http_request(
                method=request.method or "", route=route, status=response.status_code, seconds=seconds
            )
            response[logs.REQUEST_ID_HEADER] = request_id
            log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(seconds * 1000, 1),
                },
            )
            return response
        finally:
            logs.clear()


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
