"""Liveness and readiness probes.

/readyz tells anyone whether the service is ready; which check failed, and how (the
exception text names hosts, ports and database names), only staff or a caller with
`Authorization: Bearer <READYZ_TOKEN>` see.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up; touches nothing else."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return f"{type(exc).__name__}: {exc}"
    return None


def _check_broker() -> str | None:
    # The project's Celery app (config/celery_app.py, loaded by config/__init__.py) is the
    # current app: core reaches it without importing config.
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    return None


# Details other apps add to /readyz (registered from their AppConfig.ready(), so core
# imports no app): name -> callable returning None (all well) or a dict saying what
# is behind. A detail never makes the probe fail: readiness is the database and the
# broker; a lagging consumer is worth seeing, not a reason to take web out of service.
_details: dict[str, Callable[[], dict[str, Any] | None]] = {}


def register_detail(name: str, check: Callable[[], dict[str, Any] | None]) -> None:
    _details[name] = check


def _details_report() -> dict[str, Any]:
    report = {}
    for name, check in _details.items():
        try:
            detail = check()
        except Exception as exc:  # noqa: BLE001 - a broken detail must not break the probe
            detail = {"error": f"{type(exc).__name__}: {exc}"}
        if detail:
            report[name] = detail
    return report


def _may_see_details(request: HttpRequest) -> bool:
    token = settings.READYZ_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return False  # anonymous: no session lookup (the database may be the thing that is down)
    try:
        return request.user.is_staff
    except Exception:  # noqa: BLE001 - no database, no session: not staff
        return False


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database and the broker both answer."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    ready = all(error is None for error in checks.values())
    details = _details_report() if checks["database"] is None else {}
    # Anyone may learn that a consumer lags ("degraded"); which one, and its last
    # error, only those who may see details (staff, or READYZ_TOKEN).
    body: dict = {"status": "unavailable" if not ready else ("degraded" if details else "ok")}
    if _may_see_details(request):
        body["checks"] = {name: ("ok" if error is None else error) for name, error in checks.items()}
        if details:
            body["details"] = details
    return JsonResponse(body, status=200 if ready else 503)
