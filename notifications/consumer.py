"""The `notifications` outbox consumer: which facts a customer is told about.

order.confirmed -> "confirmed"; order.cancelled -> "cancelled" with the reason in
plain words; payment.refunded -> "refund issued". When a consistency incident was
live on the order at the time (reconciliation decides: incident_behind_order_change),
the message is an apology naming the case, and once sent the incident records that
the customer was told. Runs in the relay's transaction; the row's unique
(event_id, kind) is the inbox (at most one message per event).
"""

from __future__ import annotations

from django.db import transaction

from orders.selectors import order_get
from outbox.dto import EventDTO
from outbox.registry import Consumer
from reconciliation.selectors import incident_behind_order_change

from . import messages
from .models import Notification, NotificationKind
from .tasks import poke_sender

NAME = "notifications"


def handle(event: EventDTO) -> None:
    obj = event.payload.get("object") or {}
    if event.type == "order.confirmed":
        order_id, to = int(event.aggregate_id), obj["customer_email"]
        kind, incident_id = NotificationKind.ORDER_CONFIRMED, None
        message = messages.order_confirmed(order_id=order_id, total=obj["total"], currency=obj["currency"])
    elif event.type == "order.cancelled":
        order_id, to = int(event.aggregate_id), obj["customer_email"]
        kind = NotificationKind.ORDER_CANCELLED
        incident_id = incident_behind_order_change(order_id=order_id, at=event.created_at)
        message = messages.order_cancelled(
            order_id=order_id, failure_reason=obj.get("failure_reason"), incident_id=incident_id
        )
    elif event.type == "payment.refunded":
        order_id = int(obj["order_id"])
        to = order_get(order_id=order_id).customer_email
        kind = NotificationKind.REFUND_ISSUED
        incident_id = incident_behind_order_change(order_id=order_id, at=event.created_at)
        refund = obj["refund"]
        message = messages.refund_issued(
            order_id=order_id,
            amount=refund["amount"],
            currency=refund["currency"],
            full=obj["status"] == "refunded" and refund["amount"] == obj["amount"],
            incident_id=incident_id,
        )
    else:
        return
    _, created = Notification.objects.get_or_create(
        event_id=event.id,
        kind=kind,
        defaults={
            "order_id": order_id,
            "to": to,
            "subject": message.subject,
            "body": message.body,
            "apology": incident_id is not None,
            "incident_id": incident_id,
            "next_attempt_at": event.created_at,
        },
    )
    if created:
        transaction.on_commit(poke_sender, robust=True)


CONSUMER = Consumer(
    NAME,
    handle,
    event_types=frozenset({"order.confirmed", "order.cancelled", "payment.refunded"}),
    description="E-mails to customers: confirmed, cancelled, refund issued (apologies for incidents).",
)
