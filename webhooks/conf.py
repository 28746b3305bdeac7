"""Webhook settings, read at call time (tests override them)."""

from __future__ import annotations

from django.conf import settings

# Svix / Standard Webhooks-like schedule: the wait before attempt 2, 3, ...; about
# 37 hours in all (33 with the shortest jitter), so an endpoint is retried for at least 24 h before it is given up.
DEFAULT_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000, 36000)


def retry_schedule() -> tuple[float, ...]:
    return tuple(float(s) for s in getattr(settings, "WEBHOOK_RETRY_SCHEDULE", DEFAULT_RETRY_SCHEDULE))


def allow_private_urls() -> bool:
    """Loopback, private and link-local addresses are refused unless this is on
    (off in production settings; on for development and tests, whose shops run here)."""
    return bool(getattr(settings, "WEBHOOK_ALLOW_PRIVATE_URLS", False))


def timeout() -> float:
    return float(getattr(settings, "WEBHOOK_TIMEOUT", 10.0))


def event_retention_days() -> float:
    return float(getattr(settings, "WEBHOOK_EVENT_RETENTION_DAYS", 30))


def max_endpoints_per_client() -> int:
    return int(getattr(settings, "WEBHOOK_MAX_ENDPOINTS", 16))
