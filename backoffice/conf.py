"""Back-office settings, read from Django settings with safe defaults."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.conf import settings


def _amount(name: str, default: str) -> Decimal:
    raw = getattr(settings, name, default)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"{name} is not a number: {raw!r}") from None
    if value < 0 or not value.is_finite():
        raise ValueError(f"{name} must be zero or more")
    return value


def approval_threshold() -> Decimal:
    """A money-moving action whose amount, plus what was already refunded or asked for
    the same order, is strictly above this (in the payment's currency) needs a second
    person from finance (settings.BACKOFFICE_APPROVAL_THRESHOLD, from the environment)."""
    return _amount("BACKOFFICE_APPROVAL_THRESHOLD", "100.00")


def approval_daily_limit() -> Decimal:
    """What one person may move without a second person per UTC day, per currency
    (settings.BACKOFFICE_APPROVAL_DAILY_LIMIT): past it every money-moving action of
    theirs waits for finance, however small (issue 13, item 2)."""
    return _amount("BACKOFFICE_APPROVAL_DAILY_LIMIT", "1000.00")


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
