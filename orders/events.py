"""The facts orders publishes (docs/events.md), recorded by the transition
services in the transaction that makes them true:

- order.placed     an order was accepted (pending; its checkout runs next)
- order.confirmed  stock committed and payment captured
- order.cancelled  the order ended cancelled; `failure_reason` says why

Payload (schema 2): {"object": <the order as the API shows it, without its
payment, plus "object": "order" and "client_id">, "meta": {...}}. payment.*
events (payments) carry the money side. Schema 2 added `meta`, internal facts
that shops never see (webhooks publish `object` only) and the read models need:
order.placed carries {"idempotency_key": the API request's key, or null}.
"""

from __future__ import annotations

from typing import Any

from rest_framework.fields import DateTimeField

from core.money import format_amount
from outbox.services import event_record

from .dto import OrderDTO

ORDER_PLACED = "order.placed"
ORDER_CONFIRMED = "order.confirmed"
ORDER_CANCELLED = "order.cancelled"
SCHEMA_VERSION = 2

_DATETIME = DateTimeField()


def order_document(order: OrderDTO) -> dict[str, Any]:
    """The order's own fields as the API renders them (money as decimal strings in
    the order's currency); the API adds the payment, events add client_id."""
    return {
        "id": order.id,
        "status": order.status,
        "failure_reason": order.failure_reason,
        "customer_email": order.customer_email,
        "currency": order.currency,
        "total": format_amount(order.total, order.currency),
        "lines": [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": format_amount(line.unit_price, order.currency),
                "line_total": format_amount(line.line_total, order.currency),
            }
            for line in order.lines
        ],
        "created_at": _DATETIME.to_representation(order.created_at),
        "updated_at": _DATETIME.to_representation(order.updated_at),
    }


_BY_STATUS = {"confirmed": ORDER_CONFIRMED, "cancelled": ORDER_CANCELLED}


def order_event_record(
    order: OrderDTO, *, event_type: str | None = None, meta: dict[str, Any] | None = None
) -> None:
    """Record the order's event in the caller's transaction (the order row is
    locked or new). Without `event_type`, the status the order just reached says
    which (confirmed, cancelled); other statuses are no fact for others."""
    event_type = event_type or _BY_STATUS.get(order.status)
    if event_type is None:
        return
    event_record(
        type=event_type,
        aggregate_type="order",
        aggregate_id=order.id,
        payload={
            "object": {"object": "order", "client_id": order.client_id, **order_document(order)},
            "meta": meta or {},
        },
        schema_version=SCHEMA_VERSION,
    )
