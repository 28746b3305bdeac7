"""Authentication, fault injection and error rendering for every request."""

from __future__ import annotations

import hmac
import logging
import time

from django.conf import settings
from django.db import connections

from . import faults
from .errors import ApiError, api_error_response, error_response

logger = logging.getLogger(__name__)


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
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "The sandbox failed unexpectedly.")
