"""Pokes: "a worker should look now" messages sent after a commit.

A poke is an optimisation: every consumer of one also polls (beat), so a broker
or cache that is down loses the poke, never the work. Hence one warning line —
no traceback, never an error for the caller whose data committed — and a Redis
flag (SET NX with a short expiry) so a burst of commits queues one task.

`poke_coalesced_on_commit`: the coalesced pokes one transaction asks for (an accepted
order: the outbox relay's and the saga start's) go after its commit as one batch, so
their flags cost one Redis round trip, not one each (issue 16). Each app still names
its own key and task; this module only batches them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from django.core.cache import cache
from django.db import connection, transaction

from core import logs

log = logging.getLogger(__name__)

# After a failure, pokes are skipped for this long (the polls carry the work): a
# broker that is down must not cost every request a failed connection attempt.
BACKOFF_SECONDS = 5.0
_skip_until = 0.0


def poke_coalesced(key: str, send: Callable[[], object], *, seconds: float = 1.0) -> None:
    """Call `send` unless `key` was set in the last `seconds` (the task that `send`
    queues clears it when it starts, see poke_clear)."""
    _poke_many([(key, send, seconds)])


def poke_coalesced_on_commit(key: str, send: Callable[[], object], *, seconds: float = 1.0) -> None:
    """poke_coalesced(key, send) once the current transaction commits (at once outside
    one), once per transaction and key, in one batch with the transaction's other
    coalesced pokes: all their flags in one Redis round trip. robust: a broker or
    cache that is down must not fail a request whose data committed (logged, and the
    polls find the work)."""
    batch = next(
        (entry[1] for entry in connection.run_on_commit if isinstance(entry[1], _OnCommitBatch)),
        None,
    )
    if batch is not None:
        # Added inside a savepoint that then rolls back, the poke stays in the batch:
        # one poke too many (a task that finds nothing), never a lost one.
        batch.pokes.setdefault(key, (send, seconds))
        return
    batch = _OnCommitBatch()
    batch.pokes[key] = (send, seconds)
    transaction.on_commit(batch, robust=True)  # outside a transaction: runs now


class _OnCommitBatch:
    """The coalesced pokes one transaction asked for, sent after its commit."""

    def __init__(self) -> None:
        self.pokes: dict[str, tuple[Callable[[], object], float]] = {}

    def __call__(self) -> None:
        _poke_many([(key, send, seconds) for key, (send, seconds) in self.pokes.items()])


def _poke_many(pokes: Sequence[tuple[str, Callable[[], object], float]]) -> None:
    global _skip_until
    if time.monotonic() < _skip_until:
        return
    try:
        add_many = getattr(cache, "add_many", None)  # core.cache's Redis: one round trip
        if add_many is not None:
            added = add_many([(key, 1, seconds) for key, _, seconds in pokes])
        else:
            added = [cache.add(key, 1, timeout=seconds) for key, _, seconds in pokes]
        for (_, send, _), was_added in zip(pokes, added, strict=True):
            if was_added:
                # The task serves every commit since, not this request: send it without its ids.
                with logs.detached():
                    send()
    except Exception as exc:  # noqa: BLE001 - kombu and redis-py raise several types; none may escape
        _skip_until = time.monotonic() + BACKOFF_SECONDS
        log.warning(
            "poke not sent: %s (%s: %s); pokes paused %.0f s, the polls find the work",
            ", ".join(key for key, _, _ in pokes),
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
