"""The executor: one pass over one run.

A pass takes the run with a lease, runs as many steps as succeed, and checkpoints
each one. Commit budget (see docs/saga-engine.md):

- a transactional (local) step: ONE commit — row lock, the action (in a savepoint),
  the step log row, the new position and the lease renewal for the next step (or
  its release, when the pass ends) all in the same transaction. When the pass
  starts at such a step, taking the lease is folded into that commit too.
- a non-transactional (external) step: ONE commit after the call (checkpoint +
  log + lease). If the pass *starts* at an external step, one more commit takes
  the lease first, because no transaction may be held during the call.

So a three-step run of local steps costs 3 commits; local, external, local
(the checkout) costs 3; a pass that starts at an external step costs steps + 1.

Round trips: a step runs with no savepoint of its own (a result other than done
rolls the whole transaction back and the attempt is checkpointed in a fresh one),
and the domain services it calls join its transaction (core.transactions); the
audit rows (django-fsm-log) of a checkpoint are one multi-row INSERT
(core.audit_batch). tests/checkout/test_statement_budget.py pins the count.

Concurrency: claiming uses SELECT … FOR UPDATE SKIP LOCKED on a run that is due
and whose lease is free or expired; once claimed, every later checkpoint
re-locks the row and checks `lease_owner` is still this pass (fencing): a pass
that lost its lease discards its result (a local step's writes roll back with it).

Observability: a pass binds `saga_run_id`, `saga_type` and the run's subject (under
the name its definition gives it, e.g. `order_id`) for every log line it causes;
each attempt is logged and counted (core/metrics.py: step duration, retries by
error class), and so are runs coming to rest and leases lost.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core import logs, metrics, tracing
from core.audit_batch import audit_batch
from core.audit_batch import take_rows as take_audit_rows
from core.sql import column, concrete_field, insert_values, instance_from_row, select_columns

from . import registry
from .choices import ACTIVE_STATUSES, Direction, RunStatus, StepOutcome
from .definition import RetryPolicy, SagaDefinition, Step, StepContext, StepResult
from .models import SagaRun, SagaStepLog

log = logging.getLogger(__name__)

# What advance_run returns when it did not (or no longer) hold the run.
NOT_CLAIMED = "not_claimed"  # not due, leased by someone else, locked, or at rest
LEASE_LOST = "lease_lost"  # another pass took over while this one was in a step
_CONTINUE = "continue"

HOOK_STEP = "on_compensated"
# Retries of a failing on_compensated hook (it has no Step of its own).
HOOK_RETRY = RetryPolicy()
RETRYABLE = {StepOutcome.RETRY, StepOutcome.TIMEOUT, StepOutcome.ERROR, StepOutcome.LEASE_EXPIRED}


def lease_margin() -> float:
    """Seconds a lease outlives the step timeout: room for the checkpoint itself."""
    return float(getattr(settings, "SAGA_LEASE_MARGIN", 10.0))


def pass_budget() -> float:
    """After this many seconds a pass stops starting new steps (and re-pokes the run),
    so one long saga never approaches the Celery time limits."""
    return float(getattr(settings, "SAGA_PASS_BUDGET", 60.0))


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Undo(Exception):
    """Raised out of a checkpoint's transaction to roll all of it back: a local step
    (or an external step's apply) did not end done. The step runs without a
    savepoint of its own (two round trips saved per step on the happy path), so
    undoing its writes means undoing the transaction; the attempt is then
    checkpointed in a fresh one (_checkpoint_undone)."""

    def __init__(self, attempt: _Attempt, step: Step, run: SagaRun) -> None:
        super().__init__(attempt.error)
        self.attempt = attempt
        self.step = step
        # Where the run stood when the step was attempted.
        self.position = (run.step_index, run.direction)


@dataclass
class _Attempt:
    outcome: str
    result: StepResult | None
    error: str
    started_at: datetime
    duration_ms: int
    # An external step with `apply`: what the call returned, recorded by
    # step.apply inside the checkpoint (outcome is decided there).
    call: object = None
    ctx: StepContext | None = None
    to_apply: bool = False
    # The external step's apply raised: its writes must be rolled back.
    raised: bool = False


def advance_run(
    run_id: int, worker_id: str | None = None, *, handoff: Callable[[int], None] | None = None
) -> str:
    """Run `run_id` as far as it goes now. Returns the run's status when the pass
    ended, or NOT_CLAIMED / LEASE_LOST. Safe to call any number of times,
    concurrently: at most one pass holds the run.

    `handoff(run_id)` is called inside the final checkpoint's transaction when the
    pass stops for its time budget with the run still due (sagas.tasks passes its
    on-commit poke; the engine itself knows no task queue). Without it, the sweeper
    picks the run up."""
    with logs.scope(saga_run_id=run_id):
        return _Pass(run_id, worker_id or default_worker_id(), handoff).execute()


def current_step(run: SagaRun, definition: SagaDefinition) -> Step | None:
    """The step (forward) or the step whose compensation (compensate) runs next."""
    steps = definition.steps
    if run.direction == Direction.FORWARD:
        return steps[run.step_index] if run.step_index < len(steps) else None
    return steps[run.step_index - 1] if run.step_index > 0 else None


def release_lease(run: SagaRun) -> None:
    run.lease_owner = ""
    run.lease_expires_at = None


class _Pass:
    def __init__(self, run_id: int, worker_id: str, handoff: Callable[[int], None] | None = None) -> None:
        self.run_id = run_id
        self.handoff = handoff
        # Unique per pass, so two passes in one process (threads) never share a lease.
        self.owner = f"{worker_id}/{uuid.uuid4().hex[:8]}"[:128]
        self.started = time.monotonic()
        self.holding = False
        self.run: SagaRun | None = None
        self.definition: SagaDefinition | None = None
        # Column values as last read or written: _write updates only what changed.
        self._seen: dict[str, object] = {}
        # Step-log rows written with the next _write, in the same statement.
        self._pending_logs: list[SagaStepLog] = []
        # statement_timeout (ms) set in the current transaction, 0 = none.
        self._timeout_ms = 0
        # True right after this pass committed a checkpoint under the row lock:
        # the abort flag it saw then is as fresh as a re-read would be.
        self._just_checkpointed = False
        # Closed when the pass ends: the span continuing the run's origin trace.
        self._trace = contextlib.ExitStack()

    # --- the loop ----------------------------------------------------------

    def execute(self) -> str:
        with self._trace:
            while True:
                holding = self.holding
                try:
                    if self._next_is_unlocked_external():
                        status = self._external_step()
                    else:
                        status = self._locked_unit()
                except _Undo as undo:
                    # The transaction rolled back, the lease taken in it too.
                    self.holding = holding
                    status = self._checkpoint_undone(undo)
                if status != _CONTINUE:
                    return status

    def _next_is_unlocked_external(self) -> bool:
        """True when this pass holds the lease and the next step is external with
        no abort pending: then the call runs with no transaction open."""
        if not self.holding or self.run is None or self.definition is None:
            return False
        run = self.run
        step = current_step(run, self.definition)
        if step is None or step.transactional:
            return False
        if run.direction == Direction.FORWARD and not self._just_checkpointed:
            # A cheap read (no lock, no commit): an abort requested since the last
            # checkpoint should stop a charge before it is made, not refund it after.
            # Skipped right after this pass's own checkpoint, which read the flag
            # under the row lock an instant ago (an abort landing in between is
            # the charge-vs-cancel race: the next checkpoint refunds).
            aborted = SagaRun.objects.filter(pk=run.pk).values_list("abort_requested", flat=True).first()
            if aborted:
                return False
        return True

    # --- units -------------------------------------------------------------

    def _locked_unit(self) -> str:
        """One transaction: lock (claim or re-lock), handle abort and terminal
        positions, and run a local step with its checkpoint — or just take the
        lease before an external step."""
        self._just_checkpointed = False
        self._timeout_ms = 0
        self._pending_logs = []
        with transaction.atomic(), audit_batch():
            run = self._lock(self._expected_local_timeout())
            if run is None:
                return self._lease_lost() if self.holding else NOT_CLAIMED
            definition = registry.get(run.saga_type)
            if self.definition is None:
                _bind_log_context(run, definition)
                # The rest of the pass in the trace of whoever started the run.
                self._trace.enter_context(tracing.continued(run.origin, name=f"saga pass {run.saga_type}"))
            self.definition = definition
            now = timezone.now()
            if not self.holding:
                self.holding = True
                if run.lease_owner and run.lease_owner != self.owner:
                    self._note_abandoned(run, definition, now)
            self._apply_abort(run, definition, now)
            if run.status in ACTIVE_STATUSES and self._settle(run, definition, now):
                return self._save(run, definition, now)
            if run.status not in ACTIVE_STATUSES:
                return self._save(run, definition, now)
            step = current_step(run, definition)
            assert step is not None  # _settle returned False
            if step.transactional:
                attempt = self._attempt_local(run, step)
                if attempt.outcome != StepOutcome.DONE:
                    raise _Undo(attempt, step, run)
                return self._checkpoint(run, definition, step, attempt)
            # External step next: commit the lease first (no transaction may be
            # open during the call).
            run.lease_owner = self.owner
            run.lease_expires_at = now + self._lease_for(step)
            self._write(run, now)
            self.run = run
            self._just_checkpointed = True
            return _CONTINUE

    def _external_step(self) -> str:
        run, definition = self.run, self.definition
        assert run is not None and definition is not None
        step = current_step(run, definition)
        assert step is not None
        attempt = self._attempt_external(run, step)
        self._just_checkpointed = False
        self._timeout_ms = 0
        self._pending_logs = []
        with transaction.atomic(), audit_batch():
            locked = self._lock()
            if locked is None or (locked.step_index, locked.direction) != (run.step_index, run.direction):
                # Nothing of the call is recorded: the pass that holds the run now
                # repeats it with the same idempotency key and records that.
                log.warning("saga run %s: lease lost during %s, result discarded", run.pk, step.name)
                return self._lease_lost()
            if attempt.to_apply:
                attempt = self._apply(step, attempt)
                if attempt.raised:
                    # Its writes go with the transaction; the error is checkpointed.
                    raise _Undo(attempt, step, locked)
            return self._checkpoint(locked, definition, step, attempt)

    def _checkpoint_undone(self, undo: _Undo) -> str:
        """Checkpoint an attempt whose transaction was rolled back (its writes are
        undone), in a fresh transaction: re-lock (or re-claim) the run and log the
        attempt — if the run is still at that step. Otherwise another pass moved
        it meanwhile, and the undone attempt changed nothing worth a record."""
        self._just_checkpointed = False
        self._timeout_ms = 0
        self._pending_logs = []
        with transaction.atomic(), audit_batch():
            run = self._lock()
            if run is None:
                return self._lease_lost() if self.holding else NOT_CLAIMED
            definition = registry.get(run.saga_type)
            self.definition = definition
            now = timezone.now()
            if not self.holding:
                self.holding = True
                if run.lease_owner and run.lease_owner != self.owner:
                    self._note_abandoned(run, definition, now)
            if run.status in ACTIVE_STATUSES and (run.step_index, run.direction) != undo.position:
                # The rolled-back transaction may have turned the run to compensate
                # (an abort) or skipped steps before the attempt: the same again.
                self._apply_abort(run, definition, now)
                if self._settle(run, definition, now):
                    return self._save(run, definition, now)
            if run.status not in ACTIVE_STATUSES or (run.step_index, run.direction) != undo.position:
                return self._save(run, definition, now)
            run.step = undo.step.name
            return self._checkpoint(run, definition, undo.step, undo.attempt)

    def _lease_lost(self) -> str:
        metrics.saga_lease_lost(saga=self.run.saga_type if self.run is not None else "")
        return LEASE_LOST

    def _expected_local_timeout(self) -> int:
        """The statement_timeout (ms) for the local step this pass runs next, when
        it is known before the lock (the pass holds the run); 0 otherwise."""
        if not self.holding or self.run is None or self.definition is None:
            return 0
        step = current_step(self.run, self.definition)
        return int(step.timeout * 1000) if step is not None and step.transactional else 0

    def _lock(self, timeout_ms: int = 0) -> SagaRun | None:
        """Lock the run: re-lock it while this pass holds the lease (fencing: only
        while the lease is still this pass's), or claim it. Hand-written statements,
        built once per process (the ORM compiled them three times per checkout)."""
        if self.holding:
            if timeout_ms:
                # The next local step's statement_timeout rides in the locking
                # statement (set_config(..., is_local=true) = SET LOCAL: it ends
                # with the transaction, so no reset is needed).
                row = _fetch_one(_relock_sql(with_timeout=True), [str(timeout_ms), self.run_id, self.owner])
            else:
                row = _fetch_one(_relock_sql(with_timeout=False), [self.run_id, self.owner])
            if row is None:
                return None
            run = instance_from_row(SagaRun, row)
            self._timeout_ms = timeout_ms
            self._seen = _snapshot(run)
            return run
        now = timezone.now()
        # Another pass inside its checkpoint holds the row lock: skip, do not wait.
        # The claim also sets the statement_timeout of the local step at the run's
        # position (the next to last column: the ms set, NULL for none), from every
        # registered saga's local steps: one statement, not two.
        row = _fetch_one(
            _claim_sql(), [*_local_timeouts(), self.run_id, [str(s) for s in ACTIVE_STATUSES], now, now]
        )
        if row is None:
            return None
        run = instance_from_row(SagaRun, row)
        self._timeout_ms = row[-2] or 0
        self._seen = _snapshot(run)
        return run

    # --- attempts ----------------------------------------------------------

    def _context(self, run: SagaRun, name: str, timeout: float) -> StepContext:
        return StepContext(
            run_id=run.pk,
            saga_type=run.saga_type,
            subject_id=run.subject_id,
            context=MappingProxyType(copy.deepcopy(run.context)),
            attempt=run.attempts + 1,
            step=name,
            direction="forward" if run.direction == Direction.FORWARD else "compensate",
            failure_code=run.failure_code,
            deadline=time.monotonic() + timeout,
        )

    def _fn(self, run: SagaRun, step: Step):
        return step.action if run.direction == Direction.FORWARD else step.compensation

    def _attempt_local(self, run: SagaRun, step: Step) -> _Attempt:
        """Run a local step in the checkpoint's transaction, with no savepoint: a
        result other than done makes the caller roll the whole transaction back
        (_Undo). Its timeout is enforced twice: PostgreSQL's statement_timeout
        stops a runaway query, and a clock check after the action turns an overrun
        into a retryable timeout (its writes roll back)."""
        ctx = self._context(run, step.name, step.timeout)
        started_at, t0 = timezone.now(), time.monotonic()
        result: StepResult | None = None
        outcome, error = StepOutcome.DONE, ""
        timeout_ms = int(step.timeout * 1000)
        if self._timeout_ms != timeout_ms:
            # Not set by the locking statement (a claim, or an abort changed the
            # step). SET LOCAL: it ends with this transaction; the checkpoint's own
            # few statements run under it too, which is harmless.
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout_ms)])
            self._timeout_ms = timeout_ms
        try:
            result = self._fn(run, step)(ctx)
            outcome, error = _classify(result, time.monotonic() - t0, step.timeout)
            if outcome == StepOutcome.DONE and connection.needs_rollback:
                # A service inside caught an error that poisoned the transaction.
                outcome, error = StepOutcome.ERROR, "the step left its transaction marked for rollback"
        except Exception as exc:
            outcome, error = _classify_exception(exc)
            log.warning("saga run %s step %s raised", run.pk, step.name, exc_info=True)
        return _Attempt(outcome, result, error, started_at, int((time.monotonic() - t0) * 1000))

    def _attempt_external(self, run: SagaRun, step: Step) -> _Attempt:
        """Run an external step with no transaction open. Python cannot safely
        interrupt a thread, so the timeout is cooperative (ctx.remaining() for the
        HTTP client) plus a clock check: an overrun counts as a retryable timeout
        even if the call reported done — the effect, if any, is found again by the
        step's idempotency key on the retry."""
        ctx = self._context(run, step.name, step.timeout)
        started_at, t0 = timezone.now(), time.monotonic()
        result: StepResult | None = None
        applying = step.apply is not None and run.direction == Direction.FORWARD
        try:
            value = self._fn(run, step)(ctx)
            if applying:
                # Classified by _apply, inside the checkpoint transaction.
                return _Attempt(StepOutcome.DONE, None, "", started_at, _ms(t0), value, ctx, True)
            result = value
            outcome, error = _classify(result, time.monotonic() - t0, step.timeout)
        except Exception as exc:
            outcome, error = _classify_exception(exc)
            log.warning("saga run %s step %s raised", run.pk, step.name, exc_info=True)
        return _Attempt(outcome, result, error, started_at, _ms(t0))

    def _apply(self, step: Step, attempt: _Attempt) -> _Attempt:
        """Record what the external call established, in the checkpoint's
        transaction, with no savepoint: if apply raises, the caller rolls the
        whole transaction back and checkpoints the error in a fresh one (_Undo).
        The call's own duration decides a timeout, as for any external step; the
        facts are recorded either way, and a retry finds them."""
        assert step.apply is not None and attempt.ctx is not None
        t0 = time.monotonic()
        result: StepResult | None = None
        try:
            result = step.apply(attempt.ctx, attempt.call)
            if connection.needs_rollback:
                raise RuntimeError("apply left its transaction marked for rollback")
            outcome, error = _classify(result, attempt.duration_ms / 1000, step.timeout)
        except Exception as exc:
            outcome, error = _classify_exception(exc)
            log.warning("saga run %s step %s: apply raised", attempt.ctx.run_id, step.name, exc_info=True)
            duration = attempt.duration_ms + _ms(t0)
            return _Attempt(outcome, None, error, attempt.started_at, duration, raised=True)
        return _Attempt(outcome, result, error, attempt.started_at, attempt.duration_ms + _ms(t0))

    # --- state changes (all inside the caller's transaction) -----------------

    def _note_abandoned(self, run: SagaRun, definition: SagaDefinition, now: datetime) -> None:
        """The previous pass died holding the lease (worker killed, machine lost).
        Its step may or may not have taken effect; count it as a failed attempt so
        a step that kills its worker every time ends in failed, not in a loop."""
        step = current_step(run, definition)
        name = step.name if step else HOOK_STEP
        policy = step.retry if step else HOOK_RETRY
        error = f"lease of {run.lease_owner} expired at {run.lease_expires_at:%Y-%m-%d %H:%M:%S} mid-step"
        self._log(run, name, _Attempt(StepOutcome.LEASE_EXPIRED, None, error, now, 0), worker=run.lease_owner)
        run.attempts += 1
        run.last_error = error
        if run.attempts >= policy.max_attempts:
            self._exhausted(run, name)

    def _apply_abort(self, run: SagaRun, definition: SagaDefinition, now: datetime) -> None:
        if not (run.abort_requested and run.status == RunStatus.RUNNING):
            return
        # The current step counts as possibly applied once it has been attempted:
        # an unknown outcome (timeout) may have charged the customer.
        position = run.step_index + (1 if run.attempts else 0)
        run.start_compensating(description=f"abort requested: {run.failure_code}")
        run.step_index = min(position, len(definition.steps))
        run.attempts = 0
        run.next_attempt_at = now

    def _settle(self, run: SagaRun, definition: SagaDefinition, now: datetime) -> bool:
        """Normalise the position; finish the run when nothing is left. Returns
        True when there is no step to run now."""
        steps = definition.steps
        if run.direction == Direction.FORWARD:
            if run.step_index >= len(steps):
                run.step = ""
                run.complete(description="all steps done")
                return True
            run.step = steps[run.step_index].name
            return False
        # Compensation skips steps that have nothing to undo.
        while run.step_index > 0 and steps[run.step_index - 1].compensation is None:
            run.step_index -= 1
        if run.step_index > 0:
            run.step = steps[run.step_index - 1].name
            return False
        run.step = HOOK_STEP
        hook = definition.on_compensated
        if hook is not None:
            ctx = self._context(run, HOOK_STEP, 30.0)
            t0 = time.monotonic()
            try:
                with transaction.atomic():
                    hook(ctx)
            except Exception as exc:
                log.warning("saga run %s on_compensated raised", run.pk, exc_info=True)
                outcome, error = _classify_exception(exc)
                self._log(run, HOOK_STEP, _Attempt(outcome, None, error, now, _ms(t0)))
                self._retry_later(run, HOOK_STEP, HOOK_RETRY, error, now)
                return True
        run.step = ""
        run.finish_compensating(description=f"compensated: {run.failure_code}")
        return True

    def _checkpoint(self, run: SagaRun, definition: SagaDefinition, step: Step, attempt: _Attempt) -> str:
        now = timezone.now()
        self._log(run, step.name, attempt)
        result = attempt.result
        if result is not None and result.data and attempt.outcome in (StepOutcome.DONE, StepOutcome.FAIL):
            run.context = {**run.context, **result.data}
        if attempt.outcome == StepOutcome.DONE:
            run.attempts = 0
            run.last_error = ""
            run.next_attempt_at = now
            if run.direction == Direction.FORWARD:
                run.step_index += 1
                # An abort that arrived during this step: compensate it too — but
                # a run whose last step is done has completed; the abort lost.
                if run.abort_requested and run.step_index < len(definition.steps):
                    run.start_compensating(description=f"abort requested: {run.failure_code}")
            else:
                run.step_index -= 1
            self._settle(run, definition, now)
        elif attempt.outcome == StepOutcome.FAIL:
            assert result is not None
            run.last_error = attempt.error
            run.attempts = 0
            if run.direction == Direction.FORWARD:
                # A permanent failure promises no effect: compensate the steps before it.
                run.failure_code = result.failure_code
                run.start_compensating(description=f"{step.name} failed: {result.failure_code}")
                run.next_attempt_at = now
                self._settle(run, definition, now)
            else:
                run.fail_compensation(description=f"compensation of {step.name} failed: {attempt.error}")
        else:
            self._retry_later(run, step.name, step.retry, attempt.error, now)
        return self._save(run, definition, now)

    def _retry_later(self, run: SagaRun, name: str, policy: RetryPolicy, error: str, now: datetime) -> None:
        run.attempts += 1
        run.last_error = error
        if run.attempts >= policy.max_attempts:
            self._exhausted(run, name)
        else:
            run.next_attempt_at = now + timedelta(seconds=policy.delay(run.attempts))

    def _exhausted(self, run: SagaRun, name: str) -> None:
        description = f"{name}: {run.attempts} attempts failed; last error: {run.last_error}"[:1000]
        if run.direction == Direction.FORWARD:
            run.fail(description=description)
        else:
            run.fail_compensation(description=description)

    def _save(self, run: SagaRun, definition: SagaDefinition, now: datetime) -> str:
        """Write the run; keep the lease when the pass goes on, release it otherwise
        (the release is part of this same commit)."""
        due = run.next_attempt_at is not None and run.next_attempt_at <= now
        go_on = run.status in ACTIVE_STATUSES and due
        over_budget = time.monotonic() - self.started > pass_budget()
        step = current_step(run, definition)
        if run.status != self._seen.get("status") and run.status not in ACTIVE_STATUSES:
            metrics.on_commit(_came_to_rest, run.pk, run.saga_type, str(run.status))
        if go_on and not over_budget:
            run.lease_owner = self.owner
            run.lease_expires_at = now + self._lease_for(step)
        else:
            release_lease(run)
            if go_on and self.handoff is not None:
                # Long pass: hand the rest to a fresh delivery instead of running on.
                self.handoff(run.pk)
        self._write(run, now)
        self.run = run
        if go_on and not over_budget:
            self._just_checkpointed = True
            return _CONTINUE
        return run.status

    def _write(self, run: SagaRun, now: datetime) -> None:
        """The checkpoint's writes in one round trip on PostgreSQL: the pending
        step-log rows, the transaction's audit rows and an UPDATE of the run's
        changed columns only, as one statement (data-modifying CTEs). The row is
        locked by this transaction, so nobody else changed it since it was read."""
        run.updated_at = now
        changed = [name for name in _MUTABLE[:-1] if getattr(run, name) != self._seen.get(name)]
        changed.append("updated_at")
        logs, self._pending_logs = self._pending_logs, []
        # The audit rows of this transaction's transitions so far (the step's and
        # the run's), taken from the enclosing audit_batch: in this same statement,
        # not one more round trip when the block ends.
        ctes: list[str] = []
        params: list[Any] = []
        for name, rows in (("log", logs), ("audit", take_audit_rows())):
            if rows:
                insert, values = insert_values(rows)
                ctes.append(f"{name} AS ({insert})")
                params += values
        fields = [_RUN_FIELDS[name] for name in changed]
        sets = ", ".join(f"{f.column} = %s" for f in fields)
        # Names come from the models, values are parameters.
        sql = f"UPDATE {SagaRun._meta.db_table} SET {sets} WHERE id = %s"  # noqa: S608
        if ctes:
            sql = f"WITH {', '.join(ctes)} {sql}"
        params += [f.get_db_prep_save(getattr(run, f.attname), connection) for f in fields]
        params.append(run.pk)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        self._seen = _snapshot(run)

    def _lease_for(self, step: Step | None) -> timedelta:
        timeout = step.timeout if step is not None else 30.0
        return timedelta(seconds=timeout + lease_margin())

    def _log(self, run: SagaRun, name: str, attempt: _Attempt, worker: str | None = None) -> None:
        """Queue a step-log row; _write inserts it together with the run's update.
        The attempt is logged and counted now: it happened whether or not the
        checkpoint commits."""
        retried = attempt.outcome in RETRYABLE
        metrics.saga_step_attempt(
            saga=run.saga_type,
            step=name,
            direction=str(run.direction),
            outcome=str(attempt.outcome),
            seconds=attempt.duration_ms / 1000,
            retried=retried,
        )
        log.log(
            logging.WARNING if retried else logging.INFO,
            "saga step %s (%s) attempt %d: %s in %d ms%s",
            name,
            run.direction,
            run.attempts + 1,
            attempt.outcome,
            attempt.duration_ms,
            f": {attempt.error[:300]}" if attempt.error else "",
            extra={"step": name, "outcome": str(attempt.outcome)},
        )
        self._pending_logs.append(
            SagaStepLog(
                run_id=run.pk,
                step=name,
                direction=run.direction,
                attempt=run.attempts + 1,
                outcome=attempt.outcome,
                error=attempt.error[:4000],
                duration_ms=attempt.duration_ms,
                worker=worker if worker is not None else self.owner,
                started_at=attempt.started_at,
            )
        )


# Run columns a pass may change (never saga_type, subject_id, abort_requested,
# sla_at, swept_at or created_at: other writers own those).
_MUTABLE = (
    "status",
    "step_index",
    "step",
    "direction",
    "attempts",
    "next_attempt_at",
    "lease_owner",
    "lease_expires_at",
    "last_error",
    "failure_code",
    "context",
    "updated_at",
)
_RUN_FIELDS = {name: concrete_field(SagaRun, name) for name in _MUTABLE}


def _came_to_rest(run_id: int, saga_type: str, status: str) -> None:
    metrics.saga_run_finished(saga=saga_type, status=status)
    log.info("saga run %s %s", run_id, status)


def _bind_log_context(run: SagaRun, definition: SagaDefinition) -> None:
    subject: object = int(run.subject_id) if run.subject_id.isdigit() else run.subject_id
    logs.bind(saga_type=run.saga_type, **{definition.subject_log_key: subject})
    # Who started the run, unless this delivery carries its own ids (a start_fresh
    # pass serves a burst of requests and carries none).
    logs.bind_missing(run.origin)


def _snapshot(run: SagaRun) -> dict[str, object]:
    # context is replaced, never mutated in place, so keeping the reference is enough.
    return {name: getattr(run, name) for name in _MUTABLE}


def _fetch_one(sql: str, params: list[Any]) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


@functools.cache
def _relock_sql(*, with_timeout: bool) -> str:
    timeout = ", set_config('statement_timeout', %s, true)" if with_timeout else ""
    return (
        f"SELECT {select_columns(SagaRun)}{timeout} FROM {_quoted(SagaRun._meta.db_table)} "  # noqa: S608
        f"WHERE {_col('id')} = %s AND {_col('lease_owner')} = %s FOR UPDATE"
    )


@functools.cache
def _claim_sql() -> str:
    # The local step at the run's position and its timeout come from four arrays
    # (_local_timeouts): saga type, direction, step_index, ms. set_config(…, true) is
    # SET LOCAL (ends with the transaction); called only when a local step is there.
    # A skipped (locked) row may have set it too: harmless, nothing runs after.
    table = _quoted(SagaRun._meta.db_table)
    return (
        f"SELECT {select_columns(SagaRun)}, t.ms, "  # noqa: S608
        "CASE WHEN t.ms IS NOT NULL THEN set_config('statement_timeout', t.ms::text, true) END "
        f"FROM {table} LEFT JOIN LATERAL (SELECT u.ms FROM unnest(%s::text[], %s::text[], %s::int[], %s::int[]) "
        f"AS u(saga, dir, idx, ms) WHERE u.saga = {_col('saga_type')} AND u.dir = {_col('direction')} "
        f"AND u.idx = {_col('step_index')}) t ON true "
        f"WHERE {_col('id')} = %s AND {_col('status')} = ANY(%s) AND {_col('next_attempt_at')} <= %s "
        f"AND ({_col('lease_owner')} = '' OR {_col('lease_expires_at')} <= %s) FOR UPDATE OF {table} SKIP LOCKED"
    )


def _local_timeouts() -> list[list[Any]]:
    """Every registered saga's local steps by position, as current_step finds them
    (forward at step_index i: step i; compensate at i: step i - 1), with the
    statement_timeout _attempt_local sets for them (ms): the claim's arrays. Read
    from the registry each time (a few dozen entries), so a definition registered
    or replaced later counts."""
    sagas: list[str] = []
    dirs: list[str] = []
    idxs: list[int] = []
    ms: list[int] = []
    for name in registry.names():
        for i, step in enumerate(registry.get(name).steps):
            if not step.transactional:
                continue
            for direction, index in ((Direction.FORWARD, i), (Direction.COMPENSATE, i + 1)):
                sagas.append(name)
                dirs.append(str(direction))
                idxs.append(index)
                ms.append(int(step.timeout * 1000))
    return [sagas, dirs, idxs, ms]


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def _col(name: str) -> str:
    return f"{_quoted(SagaRun._meta.db_table)}.{column(SagaRun, name)}"


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


def _classify(result: object, elapsed: float, timeout: float) -> tuple[StepOutcome, str]:
    if not isinstance(result, StepResult):
        return StepOutcome.ERROR, f"step returned {type(result).__name__}, expected StepResult"
    if elapsed > timeout:
        return StepOutcome.TIMEOUT, f"step took {elapsed:.3f}s, timeout is {timeout}s"
    if result.kind == "done":
        return StepOutcome.DONE, ""
    if result.kind == "fail":
        return StepOutcome.FAIL, result.error
    if result.kind == "retry":
        return StepOutcome.RETRY, result.error
    return StepOutcome.ERROR, f"unknown step result kind {result.kind!r}"


def _classify_exception(exc: Exception) -> tuple[StepOutcome, str]:
    cause = exc.__cause__
    # 57014 query_canceled: PostgreSQL's statement_timeout fired.
    if getattr(cause, "sqlstate", None) == "57014":
        return StepOutcome.TIMEOUT, f"statement timeout: {exc}"
    return StepOutcome.ERROR, f"{type(exc).__name__}: {exc}"
