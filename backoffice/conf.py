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


def approval_daily_limit() -> Decimal:
    """What one person may move without a second person per UTC day, per currency
    (settings.BACKOFFICE_APPROVAL_DAILY_LIMIT): past it every money-moving action of
    theirs waits for finance, however small (issue 13, item 2)."""
    raw = getattr(settings, "BACKOFFICE_APPROVAL_DAILY_LIMIT", "1000.00")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"BACKOFFICE_APPROVAL_DAILY_LIMIT is not a number: {raw!r}") from None
    if value < 0 or not value.is_finite():
        raise ValueError("BACKOFFICE_APPROVAL_DAILY_LIMIT must be zero or more")
    return value
