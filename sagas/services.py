"""Writes of the saga engine: start a run, ask it to abort, and the manual
operations support uses from the back office.

Every manual operation needs a person and a reason, checks a permission, is
audited twice (django-fsm-log's StateLog for the state change, a SagaAction row
for the operation itself), and is idempotent: repeating it changes nothing and
writes no second audit row.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction
from django.utils import timezone

from core import logs, tracing
from core.audit import check_person_and_reason, check_reason, is_person
from core.errors import ConcordError, Conflict, NotFound
from core.sql import insert_unless_exists

from . import registry
from .choices import MANUAL_ACTION_PERMISSIONS, Direction, ManualAction, RunStatus, StepOutcome
from .dto import SagaRunDTO
from .executor import HOOK_STEP, current_step, release_lease
from .models import SagaAction, SagaRun, SagaStepLog
from .selectors import run_to_dto
from .tasks import poke_fresh_on_commit, poke_on_commit

# The columns of the unique constraint sagas_run_one_per_subject: one run per subject
# and type. Inserted with INSERT … ON CONFLICT DO NOTHING (core.sql): a concurrent
# double start waits, then does nothing, so the caller's transaction needs no savepoint.
_ONE_RUN_PER_SUBJECT = ("saga_type", "subject_id")


def saga_start(*, saga_type: str, subject_id: str, context: dict | None = None) -> int:
    """Create a run for `subject_id` inside the caller's transaction; on commit a
    worker starts it at once. One run per (saga_type, subject_id): starting again
    returns the existing run's id (and pokes it).

    A new run is started by tasks.start_fresh, poked once per burst of commits
    (coalesced: no Celery message per run on the caller's path; its docstring says
    why no fresh run can be missed). An existing run gets its own poke: it may be
    past its first step, where start_fresh does not look.

    Every check comes before the write, and the write cannot raise an
    IntegrityError, so the block joins the caller's transaction without a
    savepoint (two round trips fewer per accepted order)."""
    definition = registry.get(saga_type)
    subject_id = str(subject_id)
    if not subject_id or len(subject_id) > 64:
        raise ConcordError("subject_id must be 1-64 characters.", code="saga_subject_invalid")
    context = dict(context or {})
    try:
        json.dumps(context)
    except (TypeError, ValueError) as exc:
        raise ConcordError(f"Saga context must be JSON: {exc}", code="saga_context_invalid") from None
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        run = SagaRun(
            saga_type=saga_type,
            subject_id=subject_id,
            context=context,
            step=definition.steps[0].name,
            next_attempt_at=now,
            sla_at=now + definition.sla,
            origin={**(logs.origin() or {}), **tracing.carrier()} or None,
        )
        if insert_unless_exists(run, conflict=_ONE_RUN_PER_SUBJECT):
            run_id = run.pk
            poke_fresh_on_commit()
        else:
            run_id = SagaRun.objects.values_list("pk", flat=True).get(
                saga_type=saga_type, subject_id=subject_id
            )
            poke_on_commit(run_id)
    return run_id


def _lock(run_id: int) -> SagaRun:
    # Blocking lock: a worker holds this row only for one checkpoint (short).
    run = SagaRun.objects.select_for_update().filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"Saga run {run_id} does not exist.", code="saga_not_found")
    return run


def _require(by: Any, reason: str, action: str) -> None:
    check_person_and_reason(by, reason)
    if not by.has_perm(MANUAL_ACTION_PERMISSIONS[action]):
        raise ConcordError(
            f"You may not {action.replace('_', ' ')} saga runs.", code="permission_denied", http_status=403
        )


def _audit(run: SagaRun, action: str, by: Any, reason: str, from_status: str) -> None:
    SagaAction.objects.create(
        run=run,
        action=action,
        by=by if is_person(by) else None,
        by_username=by.get_username() if hasattr(by, "get_username") else (str(by) if by else ""),
        reason=reason,
        from_status=from_status,
        to_status=run.status,
        step=run.step,
        direction=run.direction,
    )


def _refuse_finished(run: SagaRun) -> None:
    if run.status == RunStatus.COMPLETED:
        raise Conflict(f"Saga run {run.pk} has completed.", code="saga_completed")
    if run.status == RunStatus.RESOLVED:
        raise Conflict(f"Saga run {run.pk} was resolved by a person.", code="saga_resolved")


def _abort(run: SagaRun, *, failure_code: str, by: Any, reason: str, action: str) -> bool:
    """Shared by saga_request_abort and saga_compensate. Returns False when there
    was nothing to do (already compensating or compensated)."""
    if not failure_code or len(failure_code) > 64:
        raise ConcordError("failure_code must be 1-64 characters.", code="saga_failure_code_invalid")
    _refuse_finished(run)
    if run.direction == Direction.COMPENSATE or run.abort_requested:
        return False
    from_status = run.status
    now = timezone.now()
    run.abort_requested = True
    run.failure_code = failure_code
    if run.status == RunStatus.FAILED:
        # Attempts ran out with the outcome unknown: compensate the failed step too
        # (compensations tolerate a missing forward effect).
        run.start_compensating(by=_fsm_by(by), description=reason)
        run.step_index += 1
        run.attempts = 0
        release_lease(run)
    # A running run switches direction in the executor, at its next step: a pass
    # may be inside an external call right now, whose effect must be compensated.
    run.next_attempt_at = now if run.next_attempt_at is None else min(run.next_attempt_at, now)
    run.save()
    _audit(run, action, by, reason, from_status)
    poke_on_commit(run.pk)
    return True


def _fsm_by(by: Any) -> Any:
    # StateLog.by is a user foreign key; anything else is recorded in the description.
    return by if is_person(by) else None


@transaction.atomic
def saga_request_abort(*, run_id: int, failure_code: str, by: Any = None, reason: str) -> None:
    """Make the run compensate at its next step (a client or staff cancel).
    Idempotent; refused once the run completed (code saga_completed)."""
    check_reason(reason, required=True)
    _abort(_lock(run_id), failure_code=failure_code, by=by, reason=reason, action=ManualAction.REQUEST_ABORT)


@transaction.atomic
def saga_compensate(*, run_id: int, by: Any, reason: str, failure_code: str) -> SagaRunDTO:
    """Staff abort: a running run compensates at its next step; a failed run starts
    compensating now. No-op when already compensating."""
    _require(by, reason, ManualAction.COMPENSATE)
    run = _lock(run_id)
    _abort(run, failure_code=failure_code, by=by, reason=reason, action=ManualAction.COMPENSATE)
    return run_to_dto(run)


@transaction.atomic
def saga_retry_now(*, run_id: int, by: Any, reason: str) -> SagaRunDTO:
    """failed / compensation_failed: start the current step afresh (attempts reset).
    running / compensating in backoff: run now. Already due or leased: no-op."""
    _require(by, reason, ManualAction.RETRY_NOW)
    run = _lock(run_id)
    from_status = run.status
    now = timezone.now()
    if run.status == RunStatus.FAILED:
        run.resume(by=_fsm_by(by), description=reason)
    elif run.status == RunStatus.COMPENSATION_FAILED:
        run.resume_compensating(by=_fsm_by(by), description=reason)
    elif run.status in (RunStatus.RUNNING, RunStatus.COMPENSATING):
        leased = run.lease_owner and run.lease_expires_at and run.lease_expires_at > now
        if leased or (run.next_attempt_at is not None and run.next_attempt_at <= now):
            return run_to_dto(run)
    else:
        raise Conflict(f"Saga run {run.pk} is {run.status}; nothing to retry.", code="saga_not_retryable")
    if from_status in (RunStatus.FAILED, RunStatus.COMPENSATION_FAILED):
        run.attempts = 0
        release_lease(run)
    run.next_attempt_at = now
    run.save()
    _audit(run, ManualAction.RETRY_NOW, by, reason, from_status)
    poke_on_commit(run.pk)
    return run_to_dto(run)


@transaction.atomic
def saga_skip_step(*, run_id: int, by: Any, reason: str, step: str | None = None) -> SagaRunDTO:
    """The person asserts the current step's effect (or undo) is in place and moves
    the run past it. Only for failed / compensation_failed runs. Pass `step` (the
    step name the person saw) to make a repeated request a no-op instead of
    skipping the following step too."""
    _require(by, reason, ManualAction.SKIP_STEP)
    run = _lock(run_id)
    if step is not None and run.step != step:
        return run_to_dto(run)
    from_status = run.status
    now = timezone.now()
    skipped = run.step
    if run.status == RunStatus.FAILED:
        run.step_index += 1
        run.resume(by=_fsm_by(by), description=f"skip {skipped}: {reason}")
    elif run.status == RunStatus.COMPENSATION_FAILED:
        run.resume_compensating(by=_fsm_by(by), description=f"skip compensation of {skipped}: {reason}")
        if run.step_index == 0:
            # Only the on_compensated hook was left: skipping it finishes the run.
            run.step = ""
            run.finish_compensating(by=_fsm_by(by), description=f"skip {HOOK_STEP}: {reason}")
        else:
            run.step_index -= 1
    else:
        raise Conflict(
            f"Saga run {run.pk} is {run.status}; only failed runs can skip a step.", code="saga_not_skippable"
        )
    if run.status != RunStatus.COMPENSATED:
        # Name the new current step now, so a repeated request naming the skipped
        # step is recognised as a repeat.
        step_now = current_step(run, registry.get(run.saga_type))
        run.step = step_now.name if step_now else ("" if run.direction == Direction.FORWARD else HOOK_STEP)
    SagaStepLog.objects.create(
        run=run,
        step=skipped,
        direction=run.direction,
        attempt=run.attempts + 1,
        outcome=StepOutcome.SKIPPED,
        error=f"skipped by {by.get_username()}: {reason}"[:4000],
        worker="",
        started_at=now,
    )
    run.attempts = 0
    release_lease(run)
    if run.status != RunStatus.COMPENSATED:
        run.next_attempt_at = now
    run.save()
    _audit(run, ManualAction.SKIP_STEP, by, reason, from_status)
    if run.status != RunStatus.COMPENSATED:
        poke_on_commit(run.pk)
    return run_to_dto(run)


@transaction.atomic
def saga_mark_resolved(*, run_id: int, by: Any, reason: str) -> SagaRunDTO:
    """A person settled the case outside the engine; the run leaves the stuck list."""
    _require(by, reason, ManualAction.MARK_RESOLVED)
    run = _lock(run_id)
    if run.status == RunStatus.RESOLVED:
        return run_to_dto(run)
    if run.status not in (RunStatus.FAILED, RunStatus.COMPENSATION_FAILED):
        raise Conflict(
            f"Saga run {run.pk} is {run.status}; only failed runs can be resolved.",
            code="saga_not_resolvable",
        )
    from_status = run.status
    run.resolve(by=_fsm_by(by), description=reason)
    release_lease(run)
    run.save()
    _audit(run, ManualAction.MARK_RESOLVED, by, reason, from_status)
    return run_to_dto(run)
