"""The facts payments publishes (docs/events.md), recorded by the transition
services in the transaction that makes them true (the payment row is locked):

- payment.captured   the provider captured the charge
- payment.failed     the charge was refused (or established never made)
- payment.refunded   a refund succeeded; object.status says partially_refunded or
                     refunded (full), object.refund is the refund that did it
- refund.failed      the provider refused a refund (its amount is refundable again)

Payload (schema 1): {"object": <the payment: "object": "payment", id, order_id,
status, amount, currency, refunded_amount, failure_code[, refund]>}. payments
knows an order only by its id, so the payment carries order_id.
"""

from __future__ import annotations

from typing import Any

from core.money import format_amount
from outbox.services import event_record

from .models import Payment, Refund

PAYMENT_CAPTURED = "payment.captured"
PAYMENT_FAILED = "payment.failed"
PAYMENT_REFUNDED = "payment.refunded"
REFUND_FAILED = "refund.failed"
SCHEMA_VERSION = 1


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


def payment_event_record(event_type: str, payment: Payment, refund: Refund | None = None) -> None:
    obj = payment_document(payment)
    if refund is not None:
        obj["refund"] = refund_document(refund)
    event_record(
        type=event_type,
        aggregate_type="payment",
        aggregate_id=payment.pk,
        payload={"object": obj},
        schema_version=SCHEMA_VERSION,
    )
