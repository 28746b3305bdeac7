"""Celery entry points for the scheduled pass (CELERY_BEAT_SCHEDULE["reconcile"]) and the
running balance's check (["reconciliation-verify-balances"]). Thin."""

from __future__ import annotations

import logging

from celery import shared_task

from .errors import ReconcileBusy
from .services import provider_balances_verify, reconcile_run

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


@shared_task(name="reconciliation.verify_balances", ignore_result=True)
def verify_balances() -> int:
    """Rows of the kept balances that differ from the charges (0: none)."""
    return sum(len(drift) for drift in provider_balances_verify().values())
