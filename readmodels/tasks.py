"""Beat: compare the read models with a fresh recomputation (readmodels.services)."""

from __future__ import annotations

import logging

from celery import shared_task

from core.outages import unless_database_down

from .services import read_models_check

log = logging.getLogger(__name__)


@shared_task(name="readmodels.check", ignore_result=True)
def check() -> dict:
    drifts = unless_database_down("read model check", read_models_check, [], log)
    return {d.model: len(d.differences) for d in drifts} if isinstance(drifts, list) else {}
