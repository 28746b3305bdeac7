"""notifications owns this table (DESIGN §1): every message to a customer.

One row per (event, kind), written by the `notifications` outbox consumer in the
relay's transaction: the unique pair is the inbox that makes a message at most
once per event, whatever the relay repeats. Sending claims the row first
(pending -> sending, committed) and only then hands the message to the mail
server, so a sender that dies mid-send leaves it `sending` (shown as "outcome
unknown") and it is never sent twice.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class NotificationKind(models.TextChoices):
    ORDER_CONFIRMED = "order_confirmed", "Order confirmed"
    ORDER_CANCELLED = "order_cancelled", "Order cancelled"
    REFUND_ISSUED = "refund_issued", "Refund issued"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Handed to the sender (if it stays here, the outcome is unknown; not resent)"
    SENT = "sent", "Sent"
    FAILED = "failed", "The mail server refused it every time"


class Notification(models.Model):
    event_id = models.UUIDField()
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    order_id = models.BigIntegerField(db_index=True)
    channel = models.CharField(max_length=16, default="email")
    to = models.EmailField(max_length=254)
    subject = models.CharField(max_length=255)
    body = models.TextField()
    # The message is an apology: a consistency incident caused the change it reports.
    apology = models.BooleanField(default=False)
    incident_id = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_id", "kind"], name="notifications_once_per_event"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="notifications_due", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for order {self.order_id} ({self.status})"
