"""The pages' probes of other systems — the provider's health check, the outbox
consumers' lag, the worker and beat heartbeats — kept a few seconds per process
(settings.BACKOFFICE_PROBE_SECONDS, default 5).

They say how the system is doing, not what a record holds: an answer a few seconds old
is as good to a person, and staff refreshing the overview, the search or the finance
page then never pay for them more than once per interval (the provider's health check
is an HTTP round trip; the consumers' lag two statements). A page shows the answer as of when it was taken; a record's
own state is always read when the page is drawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.utils import timezone

T = TypeVar("T")

_kept: dict[str, tuple[float, Any, datetime]] = {}


def probe_seconds() -> float:
    return float(getattr(settings, "BACKOFFICE_PROBE_SECONDS", 5.0))


def kept(key: str, compute: Callable[[], T]) -> T:
    """compute()'s answer, kept probe_seconds() under `key` in this process."""
    return kept_as_of(key, compute, seconds=probe_seconds())[0]


def kept_as_of(key: str, compute: Callable[[], T], *, seconds: float) -> tuple[T, datetime]:
    """compute()'s answer and when it was computed, kept `seconds` under `key` in this
    process (0: computed at every call): for a page that says "as of" beside it."""
    now = time.monotonic()
    hit = _kept.get(key)
    if hit is not None and hit[0] > now:
        return hit[1], hit[2]
    at = timezone.now()
    value = compute()
    if seconds > 0:
        _kept[key] = (now + seconds, value, at)
    return value, at


def forget() -> None:
    """Drop every kept answer (tests; after changing what the probes read)."""
    _kept.clear()


def consumers_lag() -> list[dict[str, Any]]:
    """Every outbox consumer's lag (readmodels.selectors.consumers_lag), kept."""
    from readmodels.selectors import consumers_lag as read

    return kept("consumers_lag", read)


def read_model_lag(name: str) -> Any:
    """One read model's lag (readmodels.selectors.ModelLag), or None when it is not
    registered; both read models are probed and kept together."""
    from readmodels.selectors import read_model_lag as read

    lags = kept("read_model_lag", lambda: read(names=("finance", "search")))
    return next((lag for lag in lags if lag.name == name), None)
