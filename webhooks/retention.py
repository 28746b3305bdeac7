"""Clients' events are kept WEBHOOK_EVENT_RETENTION_DAYS (default 30, like Stripe's
events list), then deleted with their finished deliveries; an event with a
delivery still pending is kept until it ends."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from . import conf
from .models import ClientEvent, DeliveryStatus, WebhookDelivery

BATCH = 2000


def client_events_prune(*, now=None) -> int:
    cutoff = (now or timezone.now()) - timedelta(days=conf.event_retention_days())
    total = 0
    while True:
        ids = list(
            ClientEvent.objects.filter(created_at__lt=cutoff)
            .exclude(deliveries__status=DeliveryStatus.PENDING)
            .order_by("id")
            .values_list("id", flat=True)[:BATCH]
        )
        if not ids:
            return total
        with transaction.atomic():
            WebhookDelivery.objects.filter(event_id__in=ids).delete()
            ClientEvent.objects.filter(id__in=ids).delete()
        total += len(ids)
