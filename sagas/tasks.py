"""Celery tasks: thin. Celery carries only "look at run X now"; the run row
holds everything else, so a lost or duplicated message costs nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from celery import shared_task
from django.db import DatabaseError, transaction
from django.utils import timezone

from core import logs
from core.outages import database_unavailable

from .executor import advance_run
from .models import SagaRun
from .selectors import saga_runs_due

log = logging.getLogger(__name__)
DATABASE_UNAVAILABLE = "database_unavailable"
T = TypeVar("T")


def _unless_database_down(what: str, work: Callable[[], T], fallback: T) -> T:
    """Run `work`; when the database is unreachable, log one line (no traceback: it is
    an outage, not a bug) and return `fallback`. Nothing half-done stays behind (each
    checkpoint is one transaction), and every run still due is swept again later."""
    try:
        return work()
    except DatabaseError as exc:
        if not database_unavailable(exc):
            raise
        log.warning("%s: database unavailable (%s); the sweeper will come back to it", what, exc)
        return fallback


@shared_task(name="sagas.advance", ignore_result=True)
def advance(run_id: int) -> str:
    hostname = getattr(advance.request, "hostname", None) or None
    # For the task's own lines too (Celery's "succeeded in ..."): the task scope ends them.
    logs.bind(saga_run_id=int(run_id))
    # A pass that ran out of its budget hands the rest of the run to a fresh delivery.
    return _unless_database_down(
        f"saga run {run_id}",
        lambda: advance_run(int(run_id), worker_id=hostname, handoff=poke_on_commit),
        DATABASE_UNAVAILABLE,
    )


def poke(run_id: int) -> None:
    """Ask a worker to look at the run now. A broker that is down loses the poke, not
    the run: the sweeper finds every due run once the broker is back (DESIGN §3), so
    a failed send is one warning line, never an error for the caller."""
    try:
        advance.delay(run_id)
    except Exception as exc:  # noqa: BLE001 - kombu and redis-py raise several types; none may escape
        log.warning(
            "saga run %s: poke not sent (%s: %s); the sweeper will find the run",
            run_id,
            type(exc).__name__,
            exc,
        )


def poke_on_commit(run_id: int) -> None:
    """Poke a worker about the run once the current transaction commits."""
    transaction.on_commit(lambda: poke(run_id))


@shared_task(name="sagas.sweep", ignore_result=True)
def sweep() -> int:
    """Re-enqueue runs that are due (their poke was lost, or a retry came due) and
    runs whose lease expired (their worker died). Cheap: one indexed query with a
    batch limit and one UPDATE marking them swept."""
    return _unless_database_down("sweep", sweep_due_runs, 0)


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
