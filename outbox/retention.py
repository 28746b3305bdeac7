"""Retention: an event applied by every registered consumer is kept
OUTBOX_RETENTION_DAYS, then deleted. An event some consumer has not applied is
never deleted, however old (its lag shows instead)."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from . import conf, registry
from .models import ConsumerState, Event

PRUNE_BATCH = 5000


def events_prune(*, now=None, batch: int = PRUNE_BATCH) -> int:
    """Delete delivered events older than the retention, in batches (short
    transactions). Returns how many went."""
    now = now or timezone.now()
    names = registry.names()
    positions = list(ConsumerState.objects.filter(pk__in=names).values_list("position", flat=True))
    if len(positions) < len(names):
        return 0  # a consumer that never ran has applied nothing
    delivered_up_to = min(positions, default=None)
    if delivered_up_to is None:
        # No consumer at all: everything sequenced counts as delivered.
        delivered_up_to = Event.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
    cutoff = now - timedelta(days=conf.retention_days())
    table = Event._meta.db_table
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "  # noqa: S608
                "WHERE sequence <= %s AND created_at < %s ORDER BY sequence LIMIT %s)",
                [delivered_up_to, cutoff, batch],
            )
            deleted = cursor.rowcount
        total += deleted
        if deleted < batch:
            return total
