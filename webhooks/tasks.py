"""Celery tasks: thin. The delivery rows hold the schedule; Celery only says
"send what is due now" (a lost message waits at most WEBHOOK_POLL_INTERVAL)."""

from __future__ import annotations

import logging

from celery import shared_task

from core.outages import unless_database_down
from core.pokes import poke_clear, poke_coalesced

from .delivery import deliver_due
from .retention import client_events_prune

log = logging.getLogger(__name__)

POKE_KEY = "webhooks:sender-poked"


def poke_sender() -> None:
    poke_coalesced(POKE_KEY, deliver.delay)


@shared_task(name="webhooks.deliver", ignore_result=True)
def deliver() -> int:
    poke_clear(POKE_KEY)
    return unless_database_down("webhooks sender", deliver_due, 0, log)


@shared_task(name="webhooks.prune", ignore_result=True)
def prune() -> int:
    return client_events_prune()
