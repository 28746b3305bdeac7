"""Back-office settings, read from Django settings with safe defaults."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.conf import settings


def approval_threshold() -> Decimal:
    """Refunds strictly above this amount (in the payment's currency) need a second
    person from finance (settings.BACKOFFICE_APPROVAL_THRESHOLD, from the environment)."""
    raw = settings.BACKOFFICE_APPROVAL_THRESHOLD
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"BACKOFFICE_APPROVAL_THRESHOLD is not a number: {raw!r}") from None
    if value < 0 or not value.is_finite():
        raise ValueError("BACKOFFICE_APPROVAL_THRESHOLD must be zero or more")
    return value


def provider_probe_timeout() -> float:
    """Seconds the overview waits for the provider's health check."""
    return float(getattr(settings, "BACKOFFICE_PROVIDER_PROBE_TIMEOUT", 0.5))


def bulk_max_items() -> int:
    """At most this many saga runs or incidents in one bulk action."""
    return int(getattr(settings, "BACKOFFICE_BULK_MAX_ITEMS", 20_000))


def bulk_chunk_seconds() -> float:
    """How long one task works on a bulk job before it queues the rest."""
    return float(getattr(settings, "BACKOFFICE_BULK_CHUNK_SECONDS", 10.0))


def bulk_lease_seconds() -> float:
    """How long a job is a worker's after its last progress: then the sweeper resumes it."""
    return float(getattr(settings, "BACKOFFICE_BULK_LEASE_SECONDS", 60.0))
