"""When a worker last took a task and when beat last sent one: the overview's answer to
"why does nothing move?" before any SLA trips (docs/backoffice.md, "Systems").

Each is one timestamp in the shared cache (the broker's Redis, `CACHES`), written
- by every worker process when a task starts (config/celery_app.py, task_prerun), at
  most once per `WRITE_EVERY` seconds per process so a busy worker does not pay a
  round trip per task. Which timestamp goes by the task's queue (`kind_of_queue`):
  WORKER for the saga queue (celery), EVENTS for the events and bulk queues — the
  Procfile's `worker` and `events` processes, so a silent events worker is not hidden
  by a busy saga worker (or the other way round). A single worker consuming every
  queue writes both. Both queues get a task from beat every few seconds (sagas.sweep,
  outbox.relay), so a healthy consumer of either is never quiet for long;
- by beat each time it sends a scheduled task (`RecordingScheduler`, the beat
  scheduler of settings.CELERY_BEAT_SCHEDULER).

A write that fails (cache down) is dropped: a heartbeat never fails a task or beat.
Reading says "never" when the key is missing (a fresh cache, or nothing ever ran).
"""

from __future__ import annotations

import logging
import time

from celery.beat import PersistentScheduler
from django.core.cache import cache

log = logging.getLogger(__name__)

WORKER = "worker"
EVENTS = "events"
BEAT = "beat"
KEYS = {
    WORKER: "heartbeat:worker:last_task",
    EVENTS: "heartbeat:events:last_task",
    BEAT: "heartbeat:beat:last_sent",
}
EVENTS_QUEUES = frozenset({"events", "bulk"})  # the Procfile's `events` process consumes these
WRITE_EVERY = 1.0  # seconds between two writes of one process
_last_write: dict[str, float] = {}


def kind_of_queue(queue: str | None) -> str:
    """The heartbeat a task from `queue` records: EVENTS for the events worker's queues,
    else WORKER (the saga queue, or no queue known: an eager call)."""
    return EVENTS if queue in EVENTS_QUEUES else WORKER


def heartbeat_record(kind: str, *, now: float | None = None) -> None:
    """Record that `kind` (WORKER, EVENTS, BEAT) is alive now. Never raises."""
    now = time.time() if now is None else now
    if now - _last_write.get(kind, 0.0) < WRITE_EVERY:
        return
    _last_write[kind] = now
    try:
        cache.set(KEYS[kind], now, timeout=None)
    except Exception:
        log.warning("heartbeat %s not recorded (cache unavailable)", kind, exc_info=True)


def heartbeat_age(kind: str, *, now: float | None = None) -> float | None:
    """Seconds since `kind` last recorded a heartbeat; None when it never did.
    Raises when the cache cannot be read (the caller says "unknown")."""
    seen = cache.get(KEYS[kind])
    if seen is None:
        return None
    return max(0.0, (time.time() if now is None else now) - float(seen))


def heartbeat_forget() -> None:
    """Drop every timestamp (tests; a fresh start)."""
    cache.delete_many(list(KEYS.values()))
    _last_write.clear()


class RecordingScheduler(PersistentScheduler):
    """Celery's default beat scheduler that also records each send as beat's heartbeat."""

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        result = super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        heartbeat_record(BEAT)
        return result
