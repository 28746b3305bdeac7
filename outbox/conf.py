"""Settings of the outbox, read at call time (tests override them)."""

from __future__ import annotations

from django.conf import settings


def retention_days() -> float:
    """Delivered events (applied by every consumer) are kept this long, then pruned."""
    return float(getattr(settings, "OUTBOX_RETENTION_DAYS", 7))


def lag_ready_seconds() -> float:
    """/readyz names a consumer whose oldest pending event is older than this."""
    return float(getattr(settings, "OUTBOX_LAG_READY_SECONDS", 60))


def relay_budget_seconds() -> float:
    """A relay pass stops starting batches after this and hands the rest to a new task."""
    return float(getattr(settings, "OUTBOX_RELAY_BUDGET", 10.0))


def sequence_batch() -> int:
    return int(getattr(settings, "OUTBOX_SEQUENCE_BATCH", 1000))


def retry_max_delay() -> float:
    """Longest wait between two attempts of a consumer whose handler raises."""
    return float(getattr(settings, "OUTBOX_RETRY_MAX_DELAY", 300.0))


def poke_coalesce_seconds() -> float:
    """At most one relay task is queued per this many seconds by commits."""
    return float(getattr(settings, "OUTBOX_POKE_COALESCE", 1.0))
