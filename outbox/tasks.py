"""Celery tasks: thin. Celery only carries "run a relay pass now"; the event rows
and consumer positions hold everything else, so a lost or duplicated message
costs nothing (the beat's poll, OUTBOX_POLL_INTERVAL, finds the work anyway)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache

from . import conf
from .relay import relay_pass
from .retention import events_prune

log = logging.getLogger(__name__)

POKE_KEY = "outbox:relay-poked"


def poke() -> None:
    """Ask for a relay pass, coalesced: many commits in a short while queue one task.
    The flag is cleared when a pass starts, so a commit during a pass queues the
    next one; if the queued message is lost, the flag expires and the poll runs."""
    try:
        if not cache.add(POKE_KEY, 1, timeout=conf.poke_coalesce_seconds()):
            return
    except Exception:
        log.warning("outbox poke: cache unavailable", exc_info=True)
    relay.delay()


@shared_task(name="outbox.relay", ignore_result=True)
def relay() -> dict:
    try:
        cache.delete(POKE_KEY)
    except Exception:
        log.warning("outbox relay: cache unavailable", exc_info=True)
    result = relay_pass()
    if result.more:
        relay.delay()
    return {"sequenced": result.sequenced, "dispatched": result.dispatched}


@shared_task(name="outbox.prune", ignore_result=True)
def prune() -> int:
    """Beat runs this hourly: delivered events older than OUTBOX_RETENTION_DAYS go."""
    return events_prune()
