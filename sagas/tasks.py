"""Celery tasks: thin. Celery carries only "look at run X now"; the run row
holds everything else, so a lost or duplicated message costs nothing."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from .executor import advance_run
from .models import SagaRun
from .selectors import saga_runs_due

log = logging.getLogger(__name__)


@shared_task(name="sagas.advance", ignore_result=True)
def advance(run_id: int) -> str:
    hostname = getattr(advance.request, "hostname", None) or None
    # A pass that ran out of its budget hands the rest of the run to a fresh delivery.
    return advance_run(int(run_id), worker_id=hostname, handoff=poke_on_commit)


def poke_on_commit(run_id: int) -> None:
    """Tell a worker to look at the run once the current transaction commits.
    robust=True: a broker that is down must not fail the caller's request after its
    data committed — the sweeper finds the run anyway."""
    transaction.on_commit(lambda: advance.delay(run_id), robust=True)


@shared_task(name="sagas.sweep", ignore_result=True)
def sweep() -> int:
    """Re-enqueue runs that are due (their poke was lost, or a retry came due) and
    runs whose lease expired (their worker died). Cheap: one indexed query with a
    batch limit and one UPDATE marking them swept."""
    return sweep_due_runs()


def sweep_due_runs() -> int:
    now = timezone.now()
    run_ids = saga_runs_due(now)
    if run_ids:
        # Autocommit: the mark is one statement, no transaction needed. A run that a
        # pass claims in between is harmless: the delivery finds it leased.
        SagaRun.objects.filter(pk__in=run_ids).update(swept_at=now)
    for run_id in run_ids:
        advance.delay(run_id)
    if run_ids:
        log.info("sweeper re-enqueued %d saga runs", len(run_ids))
    return len(run_ids)
