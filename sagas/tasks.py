"""Celery tasks: thin. Celery carries only "look at run X now"; the run row
holds everything else, so a lost or duplicated message costs nothing."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from core import logs
from core.outages import database_unavailable
from core.pokes import poke_clear, poke_coalesced, poke_coalesced_on_commit

from .choices import Direction, RunStatus
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
    return _advance(int(run_id), hostname)


def _advance(run_id: int, hostname: str | None) -> str:
    # A pass that ran out of its budget hands the rest of the run to a fresh delivery.
    return _unless_database_down(
        f"saga run {run_id}",
        lambda: advance_run(run_id, worker_id=hostname, handoff=poke_on_commit),
        DATABASE_UNAVAILABLE,
    )


# --- Starting fresh runs: one coalesced poke per burst, not one message per run ------

FRESH_POKE_KEY = "sagas:start-fresh-poked"


def poke_fresh() -> None:
    """Ask for a start_fresh pass, coalesced (core.pokes): a burst of commits that
    each started a run queues one task, not one message per run."""
    poke_coalesced(FRESH_POKE_KEY, start_fresh.delay, seconds=FRESH_POKE_SECONDS)


# How long the flag stays set when its task is slow to start (or lost): then the next
# commit queues another task. Short, like the outbox's: a lost task costs at most this
# much before a later commit asks again (and the sweeper backs it up regardless).
FRESH_POKE_SECONDS = 1.0


def poke_fresh_on_commit() -> None:
    """Once per transaction: after commit, poke start_fresh (saga_start of a new run),
    in the transaction's batch of coalesced pokes (core.pokes: one Redis round trip
    with the outbox relay's). A broker or cache that is down does not fail a request
    whose data committed — core.pokes logs it, and the sweeper finds the run."""
    poke_coalesced_on_commit(FRESH_POKE_KEY, start_fresh.delay, seconds=FRESH_POKE_SECONDS)


@shared_task(name="sagas.start_fresh", ignore_result=True)
def start_fresh() -> int:
    """Start every fresh run: publish `advance` for each but the oldest, then run the
    oldest here, so one order waits for no second hop and a burst spreads over the
    worker processes at once. Returns how many runs it started.

    Why no fresh run is missed. saga_start pokes after its transaction commits, so
    the run is visible to any read that starts after the poke's SET NX.
    - The SET NX succeeds: this task is queued after the commit; it reads after it.
    - The SET NX fails: the flag was set and not yet cleared, so the task that set it
      has not started yet (it clears the flag FIRST, before it reads). Its read comes
      after the clear, the clear after this SET NX, the SET NX after the commit: it
      sees the run. A run committed after the clear finds no flag and pokes again.
    - The flag expired with its task still queued: the next commit queues another;
      either task's read comes after this commit.
    - The task is lost (the broker dropped it, its publish failed, the cache is down,
      pokes are backing off): every later start_fresh picks the run up too (it reads
      every fresh run, not the ones of its burst), and the sweeper re-enqueues any run
      due for SAGA_SWEEP_GRACE seconds (DESIGN §3) — the backstop for every poke.
    Two passes at once claim disjoint runs (FOR UPDATE SKIP LOCKED, then swept_at set
    in the same statement): a run is published once. An `advance` that is lost after
    the claim is re-enqueued by the sweeper after SAGA_SWEEP_REQUEUE_AFTER seconds,
    the same bound as for a message the sweeper itself sent."""
    poke_clear(FRESH_POKE_KEY)
    hostname = getattr(start_fresh.request, "hostname", None) or None
    limit = int(getattr(settings, "SAGA_SWEEP_BATCH", 500))
    nothing: list[int] = []
    run_ids = _unless_database_down("start fresh runs", lambda: claim_fresh_runs(limit=limit), nothing)
    if len(run_ids) >= limit:
        poke_fresh()  # more are waiting: a next pass takes them
    for chunk in fresh_chunks(run_ids[1:]):
        poke_many(chunk)
    if run_ids:
        _advance(run_ids[0], hostname)
    return len(run_ids)


def fresh_chunks(run_ids: Sequence[int]) -> list[list[int]]:
    """The runs start_fresh hands on, in at least SAGA_FRESH_FANOUT messages (so a
    burst spreads over every worker process at once) of at most SAGA_FRESH_CHUNK runs
    each, oldest first. Not one message per run: each costs the worker Celery's own
    work around a task (receive, ack, signals, log lines) for nothing the run row
    does not already hold (issue 16). Runs are dealt in turn, so each message gets
    old and young ones alike."""
    if not run_ids:
        return []
    size = min(
        max(1, int(getattr(settings, "SAGA_FRESH_CHUNK", 20))),
        math.ceil(len(run_ids) / max(1, int(getattr(settings, "SAGA_FRESH_FANOUT", 8)))),
    )
    count = math.ceil(len(run_ids) / size)
    return [list(run_ids[i::count]) for i in range(count)]


def claim_fresh_runs(*, limit: int) -> list[int]:
    """Mark up to `limit` fresh runs as enqueued and return their ids, oldest first.
    Fresh: active, forward, at its first step, never attempted, never leased, never
    enqueued (swept_at null), due — what saga_start writes (selectors.saga_runs_fresh
    is the same set, read only). One statement served by the partial index
    sagas_run_fresh: the claim (swept_at) and the read are one round trip, and rows a
    concurrent pass holds are skipped, not waited for."""
    table = SagaRun._meta.db_table
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET swept_at = %s WHERE id IN ("  # noqa: S608 - table name from the model
            f"SELECT id FROM {table} WHERE status = %s AND direction = %s AND step_index = 0 "
            "AND attempts = 0 AND lease_owner = '' AND swept_at IS NULL AND next_attempt_at <= %s "
            "ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id",
            [now, RunStatus.RUNNING.value, Direction.FORWARD.value, now, limit],
        )
        return sorted(row[0] for row in cursor.fetchall())


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


def poke_many(run_ids: Sequence[int]) -> None:
    """Ask a worker to run these runs one after another (sagas.advance_many); one run
    is a plain poke. A failed send is one warning line, as for poke: the sweeper finds
    every run that was claimed but never leased."""
    if len(run_ids) == 1:
        poke(run_ids[0])
        return
    try:
        advance_many.delay([int(run_id) for run_id in run_ids])
    except Exception as exc:  # noqa: BLE001 - kombu and redis-py raise several types; none may escape
        log.warning(
            "saga runs %s: poke not sent (%s: %s); the sweeper will find the runs",
            ", ".join(str(r) for r in run_ids),
            type(exc).__name__,
            exc,
        )


def chunk_budget() -> float:
    """After this many seconds an advance_many task starts no further run: the rest
    goes to a fresh delivery, so a task stays far below the Celery time limits (one
    pass may take SAGA_PASS_BUDGET plus a step's timeout after it)."""
    return float(getattr(settings, "SAGA_CHUNK_BUDGET", 10.0))


@shared_task(name="sagas.advance_many", ignore_result=True)
def advance_many(run_ids: list[int]) -> int:
    """advance for several runs in turn (start_fresh's share of a burst for one worker
    process). One run's unexpected error is logged and does not hold up the others
    (its run is swept later, as after a lost message). Returns how many it ran."""
    hostname = getattr(advance_many.request, "hostname", None) or None
    started = time.monotonic()
    for done, run_id in enumerate(run_ids):
        if done and time.monotonic() - started > chunk_budget():
            poke_many(run_ids[done:])
            return done
        try:
            if _advance(int(run_id), hostname) != DATABASE_UNAVAILABLE:  # advance_run binds the log ids
                continue
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            log.exception("saga run %s: pass failed; the sweeper will come back to it", run_id)
        if not connection.in_atomic_block:
            # As between tasks (config/celery_app.py): a broken connection is dropped,
            # so the next run of the chunk starts on a fresh one, not on the same error.
            close_old_connections()
    return len(run_ids)


def poke_on_commit(run_id: int) -> None:
    """Poke a worker about this run once the current transaction commits: for a run
    that is not fresh (a handoff, a retry, an abort, a skipped step), which
    start_fresh would not pick up."""
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
