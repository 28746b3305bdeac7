"""Per-client throttling.

Every API client is a user with a token, so the client's user id is the
throttling key. Requests without a client (the provider's signed webhooks, the
schema and docs) are not throttled here: they are either verified otherwise or
static.

The counters live in Django's default cache. With a per-process cache (LocMem,
the default) each web process counts on its own; point CACHES at Redis for one
shared count across processes.
"""

from __future__ import annotations

from typing import Any

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


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
