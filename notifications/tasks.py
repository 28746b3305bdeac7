"""Celery tasks: thin. The rows hold what to send and when; Celery only says "now"."""

from __future__ import annotations

import logging

from celery import shared_task

from core.outages import unless_database_down
from core.pokes import poke_clear, poke_coalesced

from .sending import send_pending as _send_pending

log = logging.getLogger(__name__)

POKE_KEY = "notifications:sender-poked"


def poke_sender() -> None:
    poke_coalesced(POKE_KEY, send_pending.delay)


@shared_task(name="notifications.send_pending", ignore_result=True)
def send_pending() -> int:
    poke_clear(POKE_KEY)
    return unless_database_down("notifications sender", _send_pending, 0, log)
