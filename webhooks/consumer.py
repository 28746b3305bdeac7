"""The `webhooks` outbox consumer: turns the facts shops may know into the client's
events (GET /api/v1/events/) and one delivery per subscribed endpoint.

Runs in the relay's transaction (outbox.relay.consumer_dispatch): the ClientEvent
row, the delivery rows and the consumer's position commit together. The unique
event_id (and (endpoint, event) on deliveries) makes a repeat a no-op as well.
Sending happens afterwards, outside any transaction (webhooks.delivery).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q

from orders.selectors import order_client_id
from outbox.dto import EventDTO
from outbox.registry import Consumer

from .models import ClientEvent, EndpointStatus, WebhookDelivery, WebhookEndpoint
from .tasks import poke_sender

NAME = "webhooks"
# What shops may learn: orders and their money. Incidents are internal.
PUBLIC_EVENT_TYPES = (
    "order.placed",
    "order.confirmed",
    "order.cancelled",
    "payment.captured",
    "payment.failed",
    "payment.refunded",
    "refund.failed",
)
# Fields of the internal payload that shops never see.
_INTERNAL_FIELDS = ("client_id",)


def public_data(event: EventDTO) -> dict[str, Any]:
    obj = {k: v for k, v in (event.payload.get("object") or {}).items() if k not in _INTERNAL_FIELDS}
    return {"object": obj}


def _order_and_client(event: EventDTO) -> tuple[int | None, int | None]:
    obj = event.payload.get("object") or {}
    if event.aggregate_type == "order":
        order_id = int(event.aggregate_id)
        client_id = obj.get("client_id")
    else:
        order_id = obj.get("order_id")
        client_id = None
    if order_id is None:
        return None, None
    if client_id is None:
        client_id = order_client_id(order_id=int(order_id))
    return int(order_id), client_id


def handle(event: EventDTO) -> None:
    order_id, client_id = _order_and_client(event)
    if order_id is None or client_id is None:
        return  # a payment of no order we know (nothing a client could be told)
    client_event, created = ClientEvent.objects.get_or_create(
        event_id=event.id,
        defaults={
            "client_id": client_id,
            "type": event.type,
            "sequence": event.sequence,
            "order_id": order_id,
            "data": public_data(event),
            "created_at": event.created_at,
        },
    )
    if not created:
        return
    endpoints = [
        e
        for e in WebhookEndpoint.objects.filter(Q(client_id=client_id) & Q(status=EndpointStatus.ENABLED))
        if e.wants(event.type)
    ]
    if not endpoints:
        return
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                endpoint=endpoint,
                event=client_event,
                order_id=order_id,
                sequence=client_event.sequence,
                next_attempt_at=event.created_at,
            )
            for endpoint in endpoints
        ],
        ignore_conflicts=True,
    )
    transaction.on_commit(poke_sender, robust=True)


CONSUMER = Consumer(
    NAME,
    handle,
    event_types=frozenset(PUBLIC_EVENT_TYPES),
    description="The client's events (GET /api/v1/events/) and webhook deliveries to its endpoints.",
)
