"""Authentication, fault injection and error rendering for every request."""

from __future__ import annotations

import hmac
import logging
import time

from django.conf import settings
from django.db import DatabaseError, connections

from . import faults
from .errors import ApiError, api_error_response, error_response

logger = logging.getLogger(__name__)

# While its own database is unreachable the sandbox answers as a real provider would:
# 503 with Retry-After (nothing was done, or it cannot say: the client's TRANSIENT either
# way, retried with the same idempotency key), never an HTML 500 page.
UNAVAILABLE_RETRY_AFTER = 1


def _authorized(request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), settings.PSP_API_KEY.encode())


class ApiMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self._handle(request)
        except DatabaseError as exc:  # raised outside a view (the fault draw), or by one
            return self._unavailable(request, exc)

    def _unavailable(self, request, exc: Exception):
        logger.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        return error_response(
            503,
            "service_unavailable",
            "The provider's database is unavailable; retry with the same Idempotency-Key.",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
        )

    def _handle(self, request):
        path = request.path
        if not (path.startswith("/v1/") or path.startswith("/_sandbox/")):
            return self.get_response(request)
        if not _authorized(request):
            return error_response(
                401,
                "unauthorized",
                "Send 'Authorization: Bearer <API key>' with a valid key.",
                headers={"WWW-Authenticate": 'Bearer realm="sandbox-psp"'},
            )
        if not path.startswith("/v1/"):
            return self.get_response(request)  # the control plane is never faulty

        decision = faults.draw()
        request.faults = decision
        if decision.latency_ms:
            time.sleep(decision.latency_ms / 1000)
        if decision.error:
            return error_response(500, "provider_error", "Simulated failure (error_rate): nothing was done.")
        response = self.get_response(request)
        if request.method == "POST":
            if decision.error_after_commit:
                return error_response(
                    500,
                    "provider_error",
                    "Simulated failure (error_after_commit_rate) after the work committed.",
                )
            if decision.timeout_after_commit:
                # The work is committed; now answer too late for any client. Give the
                # connection back first so sleeping threads do not hold database slots.
                connections.close_all()
                time.sleep(decision.timeout_seconds)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, ApiError):
            return api_error_response(exception)
        if isinstance(exception, DatabaseError) and _database_down():
            return self._unavailable(request, exception)
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "The sandbox failed unexpectedly.")


def _database_down() -> bool:
    """A DatabaseError from a view is an outage only when the database does not answer
    (an IntegrityError or a bad query is the sandbox's own bug: 500, logged)."""
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return True
    return False
