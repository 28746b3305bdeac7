"""Reads of webhooks: a client's events and endpoints (API), an order's deliveries
(back office)."""

from __future__ import annotations

import functools

from django.db import connection

from core.errors import NotFound
from core.sql import column, fetchall_prepared

from .delivery import event_json
from .dto import DeliveryDTO, EndpointDTO
from .models import ClientEvent, EndpointStatus, WebhookDelivery, WebhookEndpoint

EVENTS_MAX_LIMIT = 100


def client_events_list(
    *, client_id: int, before_sequence: int | None = None, types: list[str] | None = None, limit: int = 20
) -> list[dict]:
    """The client's events, newest first (commit order); keyset pagination on the
    sequence. Only this client's: the filter is the first thing in the query."""
    rows = ClientEvent.objects.filter(client_id=client_id).order_by("-sequence")
    if before_sequence is not None:
        rows = rows.filter(sequence__lt=before_sequence)
    if types:
        rows = rows.filter(type__in=types)
    return [{**event_json(e), "_sequence": e.sequence} for e in rows[: max(1, min(limit, EVENTS_MAX_LIMIT))]]


def endpoints_for_client(*, client_id: int) -> list[EndpointDTO]:
    rows = WebhookEndpoint.objects.filter(client_id=client_id).exclude(status=EndpointStatus.DELETED)
    return [EndpointDTO.from_model(e) for e in rows.order_by("id")]


def endpoint_get_for_client(*, client_id: int, endpoint_id: int) -> EndpointDTO:
    endpoint = (
        WebhookEndpoint.objects.filter(pk=endpoint_id, client_id=client_id)
        .exclude(status=EndpointStatus.DELETED)
        .first()
    )
    if endpoint is None:
        raise NotFound(f"Webhook endpoint {endpoint_id} not found.", details={"endpoint_id": endpoint_id})
    return EndpointDTO.from_model(endpoint)


def webhook_deliveries_for_order(*, order_id: int) -> list[DeliveryDTO]:
    """Every delivery about an order (all endpoints), in commit order: one statement
    built once per process, the DTO's columns only (an order's case file reads it on
    every view; the ORM compiling its three-table join cost more CPU than running it)."""
    rows = fetchall_prepared(_deliveries_for_order_sql(), [order_id])
    return [DeliveryDTO(*row[:5], str(row[5]), *row[6:]) for row in rows]


@functools.cache
def _deliveries_for_order_sql() -> str:
    quote = connection.ops.quote_name
    d, e, ev = (quote(m._meta.db_table) for m in (WebhookDelivery, WebhookEndpoint, ClientEvent))

    def col(alias: str, model, name: str) -> str:
        return f"{alias}.{column(model, name)}"

    columns = (  # DeliveryDTO's fields, in order
        f"{d}.id",
        col(d, WebhookDelivery, "endpoint"),
        col(e, WebhookEndpoint, "url"),
        col(e, WebhookEndpoint, "status"),
        col(e, WebhookEndpoint, "disabled_reason"),
        col(ev, ClientEvent, "event_id"),
        col(ev, ClientEvent, "type"),
        *(
            col(d, WebhookDelivery, f)
            for f in (
                "order_id",
                "status",
                "attempts",
                "next_attempt_at",
                "last_attempt_at",
                "last_status_code",
                "last_error",
                "delivered_at",
                "created_at",
            )
        ),
    )
    return (
        f"SELECT {', '.join(columns)} FROM {d}"  # noqa: S608 (identifiers from the models)
        f" JOIN {e} ON {e}.id = {col(d, WebhookDelivery, 'endpoint')}"
        f" JOIN {ev} ON {ev}.id = {col(d, WebhookDelivery, 'event')}"
        f" WHERE {col(d, WebhookDelivery, 'order_id')} = %s"
        f" ORDER BY {col(d, WebhookDelivery, 'sequence')}, {col(d, WebhookDelivery, 'endpoint')}"
    )


def webhook_delivery_get(*, delivery_id: int) -> DeliveryDTO:
    row = WebhookDelivery.objects.select_related("endpoint", "event").filter(pk=delivery_id).first()
    if row is None:
        raise NotFound(f"Delivery {delivery_id} not found.", code="delivery_not_found")
    return DeliveryDTO.from_model(row)


def webhook_delivery_summary() -> dict:
    """For monitoring: deliveries pending (and the oldest one's due time), failed
    (given up, still kept), and endpoints disabled after persistent failure. Three
    small aggregate queries (pending deliveries are indexed)."""
    from django.db.models import Count, Min

    pending = WebhookDelivery.objects.filter(status="pending").aggregate(
        n=Count("id"), oldest=Min("created_at")
    )
    return {
        "pending": pending["n"],
        "oldest_pending_at": pending["oldest"],
        "failed": WebhookDelivery.objects.filter(status="failed").count(),
        "endpoints_disabled": WebhookEndpoint.objects.filter(status=EndpointStatus.DISABLED).count(),
    }
