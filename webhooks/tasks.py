"""Celery tasks: thin. The delivery rows hold the schedule; Celery only says
"send what is due now" (a lost message waits at most WEBHOOK_POLL_INTERVAL)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache

from .delivery import deliver_due
from .retention import client_events_prune

log = logging.getLogger(__name__)

POKE_KEY = "webhooks:sender-poked"


def poke_sender() -> None:
    """After the consumer committed new deliveries: one sender task, coalesced."""
    try:
        if not cache.add(POKE_KEY, 1, timeout=1):
            return
    except Exception:
        log.warning("webhooks poke: cache unavailable", exc_info=True)
    deliver.delay()


@shared_task(name="webhooks.deliver", ignore_result=True)
def deliver() -> int:
    try:
        cache.delete(POKE_KEY)
    except Exception:
        log.warning("webhooks deliver: cache unavailable", exc_info=True)
    return deliver_due()


@shared_task(name="webhooks.prune", ignore_result=True)
def prune() -> int:
    return client_events_prune()
