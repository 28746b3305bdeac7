"""Bulk jobs' Celery tasks (backoffice.bulk), on the `bulk` queue. A module of their own,
listed in CELERY_IMPORTS: backoffice.bulk queues them by name, so nothing imports back."""

from __future__ import annotations

import uuid

from celery import shared_task

from .bulk import bulk_jobs_stale, bulk_run_chunk
from .conf import bulk_chunk_seconds


@shared_task(name="backoffice.bulk_run", ignore_result=True)
def bulk_run(job_id: int) -> str:
    """Run a bulk job for a while, then queue the rest: no task nears the time limit,
    and the sweeper finds a job whose worker died by its lease."""
    if bulk_run_chunk(job_id=int(job_id), owner=uuid.uuid4().hex, budget=bulk_chunk_seconds()):
        bulk_run.delay(job_id)
        return "more"
    return "done"


@shared_task(name="backoffice.bulk_resume", ignore_result=True)
def bulk_resume() -> int:
    """Beat: queue every bulk job no worker holds (its worker died, or its message was lost)."""
    stale = bulk_jobs_stale()
    for job_id in stale:
        bulk_run.delay(job_id)
    return len(stale)
