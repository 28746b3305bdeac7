"""The error envelope: {"error": {"code", "message", "details"}} everywhere under /api/.

Errors are mapped once, here: ConcordError (services), DRF's exceptions (parsing,
auth, throttling, validation), Django's 404/403/400/500 handlers and the catch-all
for unknown /api/ paths. Pages outside /api/ (back office, admin) keep Django's
HTML error pages.

A database that cannot be reached (down, restarting, refusing connections) is not a
bug: every endpoint answers 503 with Retry-After (`service_unavailable` under /api/),
from DRF's exception handler for API views, core.middleware for other views, and
handler500 for anything raised outside a view.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.api_exceptions import RequestTooLarge
from core.errors import ConcordError
from core.outages import database_unavailable

API_PATH_PREFIX = "/api/"
log = logging.getLogger(__name__)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


_DRF_CODES: dict[type[exceptions.APIException], str] = {
    RequestTooLarge: "request_too_large",
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "validation_error",
}


def _validation_details(detail: Any) -> dict[str, Any]:
    # DRF gives {"field": [...]} for serializer errors: the field is named as is.
    # A bare list (raised from validate()) belongs to no field.
    if isinstance(detail, dict):
        return detail
    return {"non_field_errors": detail if isinstance(detail, list) else [detail]}


def _unavailable(request: HttpRequest, exc: BaseException) -> tuple[int, dict[str, Any] | None]:
    """Log the outage (one line, no traceback: it is not a bug) and return the
    Retry-After seconds and, under /api/, the envelope."""
    retry_after = settings.UNAVAILABLE_RETRY_AFTER
    log.warning("database unavailable for %s %s: %s", request.method, request.path, str(exc).strip())
    if not _is_api(request):
        return retry_after, None
    message = "The database is unavailable; retry after the delay in Retry-After."
    return retry_after, error_body("service_unavailable", message, {"retry_after": retry_after})


def service_unavailable(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """503 + Retry-After for a view outside DRF or an error outside any view."""
    retry_after, body = _unavailable(request, exc)
    if body is not None:
        response: HttpResponse = JsonResponse(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    else:
        response = HttpResponse(
            "<!doctype html><title>Service unavailable</title><h1>Service unavailable</h1>"
            "<p>The database cannot be reached right now. Try again in a few seconds.</p>",
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    response["Retry-After"] = str(retry_after)
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF EXCEPTION_HANDLER. Returns None for unknown errors so Django logs them
    and answers 500 through handler500 (also an envelope under /api/)."""
    if database_unavailable(exc):
        retry_after, body = _unavailable(context["request"], exc)
        return Response(
            body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(retry_after)}
        )
    if isinstance(exc, ConcordError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(code, "The request is not valid.", _validation_details(exc.detail))
    elif isinstance(exc, exceptions.Throttled):
        details = {"retry_after": exc.wait} if exc.wait is not None else {}
        response.data = error_body(code, str(exc.detail), details)
    else:
        detail = getattr(exc, "detail", str(exc))
        response.data = error_body(code, str(detail))
    return response


def json_error(
    code: str, message: str, http_status: int, details: dict[str, Any] | None = None
) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=http_status)


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PATH_PREFIX)


@csrf_exempt
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Catch-all for unknown paths under /api/: routed explicitly (config/urls.py)
    so the envelope does not depend on DEBUG (Django's debug 404 page is HTML)."""
    return json_error("not_found", "No API endpoint at this path.", status.HTTP_404_NOT_FOUND)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return json_error("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    # Django calls this while handling the exception, so sys.exc_info() names it: an
    # unreachable database raised outside any view (e.g. a middleware) is a 503 too.
    exc = sys.exc_info()[1]
    if exc is not None and database_unavailable(exc):
        return service_unavailable(request, exc)
    if _is_api(request):
        return json_error("server_error", "Internal server error.", status.HTTP_500_INTERNAL_SERVER_ERROR)
    return defaults.server_error(request)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        if isinstance(exception, RequestDataTooBig):
            return json_error(
                "request_too_large",
                "The request body is too large.",
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        return json_error("bad_request", "Bad request.", status.HTTP_400_BAD_REQUEST)
    return defaults.bad_request(request, exception or Exception("bad request"))


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return json_error("permission_denied", "Permission denied.", status.HTTP_403_FORBIDDEN)
    return defaults.permission_denied(request, exception or PermissionDenied())
