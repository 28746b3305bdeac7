"""Reads of notifications: an order's messages (the case file)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.sql import int_slot, prepared

from .models import Notification


@dataclass(frozen=True)
class NotificationDTO:
    id: int
    kind: str
    order_id: int
    to: str
    subject: str
    body: str
    apology: bool
    incident_id: int | None
    status: str
    attempts: int
    last_error: str
    created_at: datetime
    sent_at: datetime | None


def notifications_for_order(*, order_id: int) -> list[NotificationDTO]:
    return [
        NotificationDTO(
            id=n.pk,
            kind=n.kind,
            order_id=n.order_id,
            to=n.to,
            subject=n.subject,
            body=n.body,
            apology=n.apology,
            incident_id=n.incident_id,
            status=n.status,
            attempts=n.attempts,
            last_error=n.last_error,
            created_at=n.created_at,
            sent_at=n.sent_at,
        )
        # The case file reads this on every view: a statement built once (core.sql.prepared).
        for n in prepared(
            "notifications_for_order",
            lambda: Notification.objects.filter(order_id=int_slot(0)).order_by("id"),
            slots=1,
        ).instances(Notification, order_id)
    ]


def notification_status_counts() -> dict[str, int]:
    """For monitoring: notifications per status (zeros included)."""
    from django.db.models import Count

    from .models import NotificationStatus

    counts = dict.fromkeys(NotificationStatus.values, 0)
    for row in Notification.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts
