"""Celery entry point for the scheduled pass (CELERY_BEAT_SCHEDULE["reconcile"]). Thin."""

from __future__ import annotations

import logging

from celery import shared_task

from .errors import ReconcileBusy
from .services import reconcile_run

logger = logging.getLogger(__name__)


@shared_task(name="reconciliation.reconcile", ignore_result=True, soft_time_limit=110, time_limit=140)
def reconcile() -> int | None:
    try:
        result = reconcile_run()
    except ReconcileBusy:
        # The previous tick is still running; this one has nothing to add.
        logger.info("reconciliation: previous pass still running, skipping this tick")
        return None
    return result.run_id
