"""Reads of the outbox: consumer lag (for people, monitoring and /readyz) and an
aggregate's events."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from . import conf, registry
from .dto import ConsumerLag, EventDTO
from .models import ConsumerState, Event

# Per position asked for: the events pending after it (sequenced after it, or committed
# and not sequenced yet) and the oldest one's commit time.
_PENDING_SQL = f"""
SELECT k.position, p.pending, p.oldest FROM unnest(%s::bigint[]) AS k(position)
CROSS JOIN LATERAL (
    SELECT count(*) AS pending, min(created_at) AS oldest FROM (
        SELECT created_at FROM {Event._meta.db_table} WHERE sequence > k.position
        UNION ALL
        SELECT created_at FROM {Event._meta.db_table} WHERE sequence IS NULL
    ) e
) p
"""  # noqa: S608 - table name from the model


def consumer_lag() -> list[ConsumerLag]:
    """Per registered consumer: events pending (sequenced after its position, or
    committed and not sequenced yet), the age of the oldest, and when it last
    applied something. One statement for every consumer (indexed reads per distinct
    position: consumers that caught up share theirs)."""
    now = timezone.now()
    states = {s.name: s for s in ConsumerState.objects.filter(pk__in=registry.names())}
    positions = {name: states[name].position if name in states else 0 for name in registry.names()}
    with connection.cursor() as cursor:
        cursor.execute(_PENDING_SQL, [sorted(set(positions.values()))])
        backlog = {position: (pending, oldest) for position, pending, oldest in cursor.fetchall()}
    lags = []
    for name, position in positions.items():
        state = states.get(name)
        pending, oldest = backlog[position]
        lags.append(
            ConsumerLag(
                name=name,
                position=position,
                pending=int(pending),
                oldest_pending_at=oldest,
                oldest_pending_age=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
                last_delivered_at=state.last_delivered_at if state else None,
                attempts=state.attempts if state else 0,
                last_error=state.last_error if state else "",
                next_attempt_at=state.next_attempt_at if state else None,
            )
        )
    return lags


def outbox_lag_report() -> dict | None:
    """For /readyz: the consumers whose oldest pending event is older than
    OUTBOX_LAG_READY_SECONDS, or None when all are within it."""
    threshold = conf.lag_ready_seconds()
    behind = {
        lag.name: {
            "pending": lag.pending,
            "oldest_pending_seconds": round(lag.oldest_pending_age, 1),
            "last_delivered_at": lag.last_delivered_at.isoformat() if lag.last_delivered_at else None,
            **({"last_error": lag.last_error.splitlines()[0][:200]} if lag.last_error else {}),
        }
        for lag in consumer_lag()
        if lag.oldest_pending_age > threshold
    }
    return {"threshold_seconds": threshold, "lagging": behind} if behind else None


def events_for_aggregate(*, aggregate_type: str, aggregate_id: str | int, limit: int = 200) -> list[EventDTO]:
    """An aggregate's events still kept, oldest first (sequenced ones in commit order)."""
    rows = Event.objects.filter(aggregate_type=aggregate_type, aggregate_id=str(aggregate_id)).order_by(
        "serial"
    )[:limit]
    return [EventDTO.from_model(e) for e in rows]


def event_get(*, event_id: str) -> EventDTO | None:
    event = Event.objects.filter(pk=event_id).first()
    return EventDTO.from_model(event) if event is not None else None
