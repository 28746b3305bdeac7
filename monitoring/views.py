"""GET /metrics: Prometheus text format (DESIGN §5: protected in production).

With METRICS_TOKEN set, the caller must send `Authorization: Bearer <token>`
(compared in constant time); 401 otherwise. Without a token the endpoint is open,
unless METRICS_REQUIRE_TOKEN (production's default), when it answers 403 to
everyone: a production deployment that forgot the token exposes nothing.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from .exposition import render


def _refusal(request: HttpRequest) -> HttpResponse | None:
    token = settings.METRICS_TOKEN
    if not token:
        if settings.METRICS_REQUIRE_TOKEN:
            return HttpResponse(
                "Metrics are disabled: set METRICS_TOKEN.\n", status=403, content_type="text/plain"
            )
        return None
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = HttpResponse("A valid bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return None


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
