"""Pokes: "a worker should look now" messages sent after a commit.

A poke is an optimisation: every consumer of one also polls (beat), so a broker
or cache that is down loses the poke, never the work. Hence one warning line —
no traceback, never an error for the caller whose data committed — and a Redis
flag (SET NX with a short expiry) so a burst of commits queues one task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.core.cache import cache

from core import logs

log = logging.getLogger(__name__)

# After a failure, pokes are skipped for this long (the polls carry the work): a
# broker that is down must not cost every request a failed connection attempt.
BACKOFF_SECONDS = 5.0
_skip_until = 0.0


def poke_coalesced(key: str, send: Callable[[], object], *, seconds: float = 1.0) -> None:
    """Call `send` unless `key` was set in the last `seconds` (the task that `send`
    queues clears it when it starts, see poke_clear)."""
    global _skip_until
    if time.monotonic() < _skip_until:
        return
    try:
        if not cache.add(key, 1, timeout=seconds):
            return
        # The task serves every commit since, not this request: send it without its ids.
        with logs.detached():
            send()
    except Exception as exc:  # noqa: BLE001 - kombu and redis-py raise several types; none may escape
        _skip_until = time.monotonic() + BACKOFF_SECONDS
        log.warning(
            "poke %s not sent (%s: %s); pokes paused %.0f s, the polls find the work",
            key,
            type(exc).__name__,
            exc,
            BACKOFF_SECONDS,
        )


def poke_clear(key: str) -> None:
    """At the start of the poked task: commits from now on poke again."""
    try:
        cache.delete(key)
    except Exception as exc:  # noqa: BLE001
        log.warning("poke %s: cache unavailable (%s: %s)", key, type(exc).__name__, exc)
