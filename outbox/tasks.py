"""Celery tasks: thin. Celery only carries "run a relay pass now"; the event rows
and consumer positions hold everything else, so a lost or duplicated message
costs nothing (the beat's poll, OUTBOX_POLL_INTERVAL, finds the work anyway)."""

from __future__ import annotations

import logging

from celery import shared_task

from core.outages import unless_database_down
from core.pokes import poke_clear, poke_coalesced, poke_coalesced_on_commit

from . import conf
from .relay import relay_pass
from .retention import events_prune

log = logging.getLogger(__name__)

POKE_KEY = "outbox:relay-poked"


def poke() -> None:
    """Ask for a relay pass, coalesced: many commits in a short while queue one task.
    The flag is cleared when a pass starts, so a commit during a pass queues the
    next one; if the queued message is lost, the flag expires and the poll runs."""
    poke_coalesced(POKE_KEY, relay.delay, seconds=conf.poke_coalesce_seconds())


def poke_on_commit() -> None:
    """Once per transaction: after commit, ask for a relay pass (coalesced, as poke),
    in the transaction's batch of coalesced pokes (core.pokes: one Redis round trip
    for all their flags). A broker that is down does not fail a request whose data
    committed — the beat's poll finds the events anyway."""
    poke_coalesced_on_commit(POKE_KEY, relay.delay, seconds=conf.poke_coalesce_seconds())


@shared_task(name="outbox.relay", ignore_result=True)
def relay() -> dict:
    poke_clear(POKE_KEY)
    # An outage is not a bug: nothing half-done stays (each batch is one
    # transaction); the next poll carries on from the positions.
    result = unless_database_down("outbox relay", relay_pass, None, log)
    if result is None:
        return {"sequenced": 0, "dispatched": {}}
    if result.more:
        poke()
    return {"sequenced": result.sequenced, "dispatched": result.dispatched}


@shared_task(name="outbox.prune", ignore_result=True)
def prune() -> int:
    """Beat runs this hourly: delivered events older than OUTBOX_RETENTION_DAYS go."""
    return unless_database_down("outbox prune", events_prune, 0, log)
