"""The read models' outbox consumers. Each runs in the relay's transaction
(outbox.relay.consumer_dispatch): its rows and its position commit together, and its
writes are idempotent by their own keys too (facts by natural key, search rows by
order id with absolute values), so a duplicate is absorbed and a rebuild may overlap
the events that follow it (readmodels.services.read_models_rebuild).
"""

from __future__ import annotations

from decimal import Decimal

from django.utils.dateparse import parse_datetime

from outbox.dto import EventDTO
from outbox.registry import Consumer

from . import store
from .facts import FINANCE_EVENT_TYPES, event_facts
from .models import OrderSearch

FINANCE = "finance"
SEARCH = "search"
SEARCH_EVENT_TYPES = frozenset(
    {
        "order.placed",
        "order.confirmed",
        "order.cancelled",
        "payment.captured",
        "payment.failed",
        "payment.refunded",
        "refund.failed",
    }
)


def finance_handle(event: EventDTO) -> None:
    store.facts_apply(event_facts(event))


def search_handle(event: EventDTO) -> None:
    obj = event.payload.get("object") or {}
    if event.aggregate_type == "order":
        key = (event.payload.get("meta") or {}).get("idempotency_key")
        row = OrderSearch(
            order_id=int(obj["id"]),
            client_id=obj.get("client_id"),
            customer_email=obj.get("customer_email") or "",
            currency=obj.get("currency") or "",
            total=Decimal(obj.get("total") or 0),
            status=obj.get("status") or "",
            failure_reason=obj.get("failure_reason") or "",
            created_at=parse_datetime(obj["created_at"]) if obj.get("created_at") else None,
            idempotency_key=key,
        )
        store.search_orders_upsert([row], with_key=key is not None)
    elif event.aggregate_type == "payment" and obj.get("order_id") is not None:
        meta = event.payload.get("meta") or {}
        store.search_payments_upsert(
            [
                OrderSearch(
                    order_id=int(obj["order_id"]),
                    payment_id=int(obj["id"]),
                    payment_status=obj.get("status") or "",
                    charge_id=meta.get("charge_id"),
                )
            ],
            with_charge="charge_id" in meta,
        )


CONSUMERS = (
    Consumer(
        FINANCE,
        finance_handle,
        event_types=FINANCE_EVENT_TYPES,
        batch_size=500,
        description="Finance read model: per day and currency, orders, revenue, refunds, incidents.",
    ),
    Consumer(
        SEARCH,
        search_handle,
        event_types=SEARCH_EVENT_TYPES,
        batch_size=500,
        description="Back-office search model: order id, e-mail, charge id, Idempotency-Key, status.",
    ),
)
