"""HTTP endpoints of the sandbox provider. Thin: parse, call a service, render."""

from __future__ import annotations

import csv
import io
from functools import wraps

from django.http import HttpResponse

from . import faults, services
from .errors import ApiError, error_response, json_response, text_response
from .faults import NO_FAULTS
from .models import Charge, IdempotencyKey, Refund, SandboxConfig, WebhookDelivery
from .validation import (
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    charge_input,
    idempotency_key,
    parse_json_object,
    query_date,
    query_int,
    query_text,
    refund_input,
)

MAX_CREATED = 2**62


def methods(*allowed: str):
    def decorate(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in allowed:
                return error_response(
                    405,
                    "method_not_allowed",
                    f"Use {', '.join(allowed)}.",
                    headers={"Allow": ", ".join(allowed)},
                )
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


def _stored(stored: services.StoredResponse) -> HttpResponse:
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else {}
    return text_response(stored.status, stored.body, headers)


def _api_key(request) -> str:
    return request.headers["Authorization"].partition(" ")[2].strip()


def _list_args(request) -> dict:
    return {
        "created_gte": query_int(request, "created_gte", minimum=0, maximum=MAX_CREATED, default=None),
        "starting_after": query_text(request, "starting_after"),
        "limit": query_int(request, "limit", minimum=1, maximum=MAX_LIST_LIMIT, default=DEFAULT_LIST_LIMIT),
    }


@methods("GET")
def healthz(request):
    return json_response(200, {"status": "ok"})


@methods("GET", "POST")
def charges(request):
    if request.method == "GET":
        return json_response(
            200, services.charge_list(reference=query_text(request, "reference"), **_list_args(request))
        )
    key = idempotency_key(request)
    params = parse_json_object(request)
    data = charge_input(params, set(services.PAYMENT_METHODS))
    stored = services.charge_create(
        api_key=_api_key(request),
        key=key,
        params=params,
        data=data,
        faults=getattr(request, "faults", NO_FAULTS),
    )
    return _stored(stored)


@methods("GET")
def charge_detail(request, charge_id: str):
    return json_response(200, services.charge_get(charge_id))


@methods("GET", "POST")
def refunds(request):
    if request.method == "GET":
        return json_response(
            200, services.refund_list(charge=query_text(request, "charge"), **_list_args(request))
        )
    key = idempotency_key(request)
    params = parse_json_object(request)
    data = refund_input(params)
    stored = services.refund_create(
        api_key=_api_key(request),
        key=key,
        params=params,
        data=data,
        faults=getattr(request, "faults", NO_FAULTS),
    )
    return _stored(stored)


@methods("GET")
def refund_detail(request, refund_id: str):
    return json_response(200, services.refund_get(refund_id))


@methods("GET")
def settlements(request):
    day = query_date(request, "date")
    output = request.GET.get("format", "json")
    if output not in ("json", "csv"):
        raise ApiError(400, "parameter_invalid", "format must be json or csv.", {"param": "format"})
    report = services.settlement(day)
    if output == "json":
        return json_response(200, report)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=services.SETTLEMENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(report["by_currency"])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="settlement-{day.isoformat()}.csv"'
    return response


# --- Control plane (/_sandbox/), for tests and demos ----------------------------


@methods("GET", "POST", "DELETE")
def sandbox_faults(request):
    if request.method == "POST":
        return json_response(200, faults.replace(parse_json_object(request)))
    if request.method == "DELETE":
        return json_response(200, faults.clear())
    return json_response(200, faults.current())


@methods("POST")
def sandbox_reset(request):
    """Forget everything but the webhook configuration: charges, refunds, keys,
    pending webhooks, faults."""
    WebhookDelivery.objects.all().delete()
    IdempotencyKey.objects.all().delete()
    Refund.objects.all().delete()
    Charge.objects.all().delete()
    faults.clear()
    return json_response(200, {"reset": True})


def _config_api() -> dict:
    from . import webhooks

    config, _ = SandboxConfig.objects.get_or_create(pk=1)
    return {
        "webhook_url": config.webhook_url or None,
        "webhooks_disabled": config.webhooks_disabled,
        "effective_webhook_url": webhooks.webhook_url(),
    }


@methods("GET", "POST")
def sandbox_config(request):
    if request.method == "POST":
        data = parse_json_object(request)
        unknown = sorted(set(data) - {"webhook_url", "webhooks_disabled"})
        if unknown:
            raise ApiError(400, "parameter_unknown", f"Unknown setting: {unknown[0]}.", {"param": unknown[0]})
        config, _ = SandboxConfig.objects.get_or_create(pk=1)
        if "webhook_url" in data:
            url = data["webhook_url"]
            if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
                raise ApiError(400, "parameter_invalid", "webhook_url must be an http(s) URL or null.")
            config.webhook_url = url or ""
        if "webhooks_disabled" in data:
            if not isinstance(data["webhooks_disabled"], bool):
                raise ApiError(400, "parameter_invalid", "webhooks_disabled must be true or false.")
            config.webhooks_disabled = data["webhooks_disabled"]
        config.save()
    return json_response(200, _config_api())


@methods("GET")
def sandbox_webhooks(request):
    """The outbox, newest first: what was sent, how often, and what the receiver said."""
    rows = WebhookDelivery.objects.order_by("-id")[:200]
    return json_response(
        200,
        {
            "data": [
                {
                    "event_id": row.event_id,
                    "type": row.event_type,
                    "url": row.url,
                    "attempts": row.attempts,
                    "delivered": row.delivered_at is not None,
                    "last_status": row.last_status,
                    "last_error": row.last_error,
                }
                for row in rows
            ]
        },
    )


def not_found(request, exception=None):
    return error_response(404, "not_found", f"No endpoint at {request.path[:200]}.")


def server_error(request):
    return error_response(500, "internal_error", "The sandbox failed unexpectedly.")
