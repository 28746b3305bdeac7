"""Per-client throttling.

Every API client is a user with a token, so the client's user id is the
throttling key. Requests without a client (the provider's signed webhooks, the
schema and docs) are not throttled here: they are either verified otherwise or
static.

The counters live in Django's default cache, the broker's Redis (config/settings):
one count shared by every web process. When that Redis cannot be reached the
throttle does not fail the request (orders are durable in PostgreSQL; a Redis
outage must not stop ordering): it logs once and counts in the process's own
memory, at the same rate per process, until Redis answers again. It retries Redis
at most every FALLBACK_SECONDS, so an outage costs one failed attempt per process
per interval, not one per request.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache.backends.locmem import LocMemCache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

log = logging.getLogger(__name__)

FALLBACK_SECONDS = 5.0
_local_counters = LocMemCache("concord-throttle-fallback", {"OPTIONS": {"MAX_ENTRIES": 100_000}})


class _SharedCounters:
    """Whether the shared cache is in use, per process; the first failure and the
    recovery are logged, the requests in between are not."""

    down_since: float | None = None
    retry_at: float = 0.0

    @classmethod
    def failed(cls, exc: Exception) -> None:
        now = time.monotonic()
        if cls.down_since is None:
            cls.down_since = now
            log.warning(
                "throttle counters unavailable (%s: %s); counting per process until the cache answers",
                type(exc).__name__,
                exc,
            )
        cls.retry_at = now + FALLBACK_SECONDS

    @classmethod
    def succeeded(cls) -> None:
        if cls.down_since is not None:
            log.warning("throttle counters available again after %.0f s", time.monotonic() - cls.down_since)
            cls.down_since = None

    @classmethod
    def skip(cls) -> bool:
        return cls.down_since is not None and time.monotonic() < cls.retry_at


class ClientRateThrottle(SimpleRateThrottle):
    scope = "client"

    def get_rate(self) -> str | None:
        # Read the rate at call time, not at import (DRF's class attribute
        # THROTTLE_RATES is frozen when rest_framework.throttling is imported),
        # so settings overrides in tests and per-environment settings apply.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": user.pk}

    def allow_request(self, request: Any, view: Any) -> bool:
        if not _SharedCounters.skip():
            try:
                allowed = super().allow_request(request, view)
            except Exception as exc:  # noqa: BLE001 - any cache backend error: count locally instead
                _SharedCounters.failed(exc)
            else:
                _SharedCounters.succeeded()
                return allowed
        self.cache = _local_counters
        return super().allow_request(request, view)
