"""The facts payments publishes (docs/events.md), recorded by the transition
services in the transaction that makes them true (the payment row is locked):

- payment.captured   the provider captured the charge
- payment.failed     the charge was refused (or established never made)
- payment.refunded   a refund succeeded; object.status says partially_refunded or
                     refunded (full), object.refund is the refund that did it
- refund.failed      the provider refused a refund (its amount is refundable again)

Payload (schema 2): {"object": <the payment: "object": "payment", id, order_id,
status, amount, currency, refunded_amount, failure_code[, refund]>, "meta":
{"charge_id": the provider's charge id or null, "ledger_at": when the money moved
(the created_at of the ledger transaction posted with it; captured and refunded
only)}}. payments knows an order only by its id, so the payment carries order_id.
Schema 2 added `meta`: internal facts for the read models (the day money moved, the
charge id support searches by); shops never see it (webhooks publish `object`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.money import format_amount
from outbox.services import event_record

from .models import Payment, Refund

PAYMENT_CAPTURED = "payment.captured"
PAYMENT_FAILED = "payment.failed"
PAYMENT_REFUNDED = "payment.refunded"
REFUND_FAILED = "refund.failed"
SCHEMA_VERSION = 2


def refund_document(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.pk,
        "amount": format_amount(refund.amount, refund.currency),
        "currency": refund.currency,
        "status": refund.status,
        "failure_code": refund.failure_code or None,
    }


def payment_document(payment: Payment) -> dict[str, Any]:
    return {
        "object": "payment",
        "id": payment.pk,
        "order_id": payment.order_id,
        "status": payment.status,
        "amount": format_amount(payment.amount, payment.currency),
        "currency": payment.currency,
        "refunded_amount": format_amount(payment.refunded_amount, payment.currency),
        "failure_code": payment.failure_code or None,
    }


def payment_event_record(
    event_type: str,
    payment: Payment,
    refund: Refund | None = None,
    *,
    ledger_at: datetime | None = None,
) -> None:
    """`ledger_at`: the timestamp of the ledger transaction the change posted
    (ledger_post_at returns it with the id)."""
    obj = payment_document(payment)
    if refund is not None:
        obj["refund"] = refund_document(refund)
    meta: dict[str, Any] = {"charge_id": payment.provider_charge_id}
    if ledger_at is not None:
        # The ledger row's own timestamp, so a rebuild from the ledger puts the money
        # on the same day as the event did.
        meta["ledger_at"] = ledger_at
    event_record(
        type=event_type,
        aggregate_type="payment",
        aggregate_id=payment.pk,
        payload={"object": obj, "meta": meta},
        schema_version=SCHEMA_VERSION,
    )
