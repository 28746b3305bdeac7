"""Celery tasks: thin. The rows hold what to send and when; Celery only says "now"."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache

from .sending import send_pending as _send_pending

log = logging.getLogger(__name__)

POKE_KEY = "notifications:sender-poked"


def poke_sender() -> None:
    try:
        if not cache.add(POKE_KEY, 1, timeout=1):
            return
    except Exception:
        log.warning("notifications poke: cache unavailable", exc_info=True)
    send_pending.delay()


@shared_task(name="notifications.send_pending", ignore_result=True)
def send_pending() -> int:
    try:
        cache.delete(POKE_KEY)
    except Exception:
        log.warning("notifications send: cache unavailable", exc_info=True)
    return _send_pending()
