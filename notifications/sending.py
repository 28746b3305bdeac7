"""Sending: claim (commit), send through Django's e-mail framework, record (commit).

At most once per notification: the claim (pending -> sending) commits before the
message goes to the mail server; a sender that dies after it leaves the row
`sending` and nobody sends it again (the case file shows "outcome unknown"). A
mail server that refuses (an exception from send()) did not take the message: it
is retried later (NOTIFICATION_MAX_ATTEMPTS, backoff), then marked failed.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.utils import timezone

from reconciliation.services import incident_customer_notified

from .models import Notification, NotificationStatus

log = logging.getLogger(__name__)

CLAIM_BATCH = 50
_T = Notification._meta.db_table
_CLAIM_SQL = f"""
UPDATE {_T} SET status = 'sending', attempts = attempts + 1
WHERE id IN (
    SELECT id FROM {_T} WHERE status = 'pending' AND next_attempt_at <= %s
    ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED
)
RETURNING id, next_attempt_at
"""  # noqa: S608 - table name from the model


def max_attempts() -> int:
    return int(getattr(settings, "NOTIFICATION_MAX_ATTEMPTS", 5))


def notifications_claim(*, limit: int = CLAIM_BATCH) -> list[int]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [timezone.now(), limit])
        # RETURNING comes in no particular order: oldest first, as the customer lived it.
        return [row[0] for row in sorted(cursor.fetchall(), key=lambda r: (r[1], r[0]))]


def notification_send(notification_id: int) -> str:
    """Send one claimed notification; returns its status afterwards."""
    n = Notification.objects.get(pk=notification_id)
    if n.status != NotificationStatus.SENDING:
        return n.status
    try:
        EmailMessage(subject=n.subject, body=n.body, to=[n.to], from_email=settings.DEFAULT_FROM_EMAIL).send()
    except Exception as exc:
        log.warning("notification %s not sent", notification_id, exc_info=True)
        with transaction.atomic():
            done = n.attempts >= max_attempts()
            Notification.objects.filter(pk=n.pk, status=NotificationStatus.SENDING).update(
                status=NotificationStatus.FAILED if done else NotificationStatus.PENDING,
                next_attempt_at=None
                if done
                else timezone.now()
                + timedelta(seconds=min(3600, 10 * 2**n.attempts) * random.uniform(0.8, 1.2)),
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
            )
        return NotificationStatus.FAILED if done else NotificationStatus.PENDING
    with transaction.atomic():
        Notification.objects.filter(pk=n.pk).update(status=NotificationStatus.SENT, sent_at=timezone.now())
        if n.incident_id is not None:
            incident_customer_notified(
                incident_id=n.incident_id,
                channel=f"e-mail to {n.to}",
                summary=f"“{n.subject}” (notification {n.pk})",
            )
    return NotificationStatus.SENT


def send_pending() -> int:
    sent = 0
    while True:
        claimed = notifications_claim()
        if not claimed:
            return sent
        for notification_id in claimed:
            if notification_send(notification_id) == NotificationStatus.SENT:
                sent += 1
