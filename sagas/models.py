"""sagas owns these tables (DESIGN §1): runs, their step log and manual actions.

A SagaRun row is the source of truth for a saga: where it is (`step_index`,
`direction`), when it may run next (`next_attempt_at`) and who is running it
now (`lease_owner` until `lease_expires_at`). Celery only carries "look at run X".
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, transition
from django_fsm_log.decorators import fsm_log_by, fsm_log_description

from .choices import ACTIVE_STATUSES, ATTENTION_STATUSES, Direction, ManualAction, RunStatus, StepOutcome

S = RunStatus


class SagaRun(models.Model):
    saga_type = models.CharField(max_length=64)
    subject_id = models.CharField(max_length=64)
    status = FSMField(default=S.RUNNING, choices=S.choices, protected=True)
    # Position: forward runs step `step_index` next; compensation runs the
    # compensation of `step_index` next, walking down to 0.
    step_index = models.PositiveSmallIntegerField(default=0)
    step = models.CharField(max_length=64, blank=True)  # name at step_index, for people and queries
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.FORWARD)
    attempts = models.PositiveIntegerField(default=0)  # failed attempts of the current step
    next_attempt_at = models.DateTimeField(null=True, blank=True)  # null once the run is at rest
    lease_owner = models.CharField(max_length=128, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    context = models.JSONField(default=dict, blank=True)
    # The correlation ids of the request or task that started the run (core.logs
    # ORIGIN_KEYS: request_id, idempotency_key, client_id, webhook_event_id) and its
    # trace context (`traceparent`, when tracing is on). A pass binds the ids its own
    # delivery does not carry and runs in that trace — a run is started by a coalesced
    # poke that serves many requests — so its lines and spans still name the request.
    origin = models.JSONField(null=True, blank=True, editable=False)
    abort_requested = models.BooleanField(default=False)
    sla_at = models.DateTimeField()  # the run counts as stuck if still active after this
    # When the sweeper last re-enqueued the run: damps re-enqueueing of a run that
    # sits in a long queue.
    swept_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One run per saga type and subject: a double start cannot make two runs.
            models.UniqueConstraint(fields=["saga_type", "subject_id"], name="sagas_run_one_per_subject"),
        ]
        indexes = [
            # The sweeper and saga_runs_stuck only look at active runs: a partial
            # index keeps their cost proportional to the active set, not history.
            models.Index(
                fields=["next_attempt_at"],
                name="sagas_run_active_due",
                condition=Q(status__in=list(ACTIVE_STATUSES)),
            ),
            # Fresh runs (saga_start's rows, not yet enqueued nor leased): what
            # tasks.start_fresh claims. Tiny — a run leaves it at its claim — so the
            # claim costs the same with a backlog of runs waiting in the queue.
            models.Index(
                fields=["next_attempt_at"],
                name="sagas_run_fresh",
                condition=Q(
                    status=S.RUNNING,
                    direction=Direction.FORWARD,
                    step_index=0,
                    attempts=0,
                    lease_owner="",
                    swept_at__isnull=True,
                ),
            ),
            models.Index(
                fields=["sla_at"],
                name="sagas_run_active_sla",
                condition=Q(status__in=list(ACTIVE_STATUSES)),
            ),
            models.Index(
                fields=["status", "updated_at"],
                name="sagas_run_attention",
                condition=Q(status__in=[S.FAILED, S.COMPENSATION_FAILED]),
            ),
            # The back office's stuck list, oldest first, and its capped count (an
            # index-only scan: status and sla_at are in the index). _runs_filtered says
            # status IN (...) so the planner can use it.
            models.Index(
                fields=["created_at", "id"],
                name="sagas_run_stuck_oldest_bo",
                include=["status", "sla_at"],
                condition=Q(status__in=[*ATTENTION_STATUSES, *ACTIVE_STATUSES]),
            ),
            # The same runs by attempts, most first (attempts * -1, id: one key order,
            # so the stuck list filtered by error text reads them in chunks after a
            # keyset, sagas.selectors._stuck_error_scan).
            models.Index(
                F("attempts") * -1,
                F("id"),
                name="sagas_run_stuck_attempts_bo",
                condition=Q(status__in=[*ATTENTION_STATUSES, *ACTIVE_STATUSES]),
            ),
            # The back office's list of every run (?all=1), oldest first.
            models.Index(fields=["created_at", "id"], name="sagas_run_created_bo"),
            # The back office's case file: every run about one order (saga_runs_for_subject).
            # The unique (saga_type, subject_id) cannot serve a lookup by subject alone.
            models.Index(fields=["subject_id"], name="sagas_run_subject_bo"),
        ]
        permissions = [
            ("retry_run", "Can retry a saga run now"),
            ("compensate_run", "Can make a saga run compensate (abort)"),
            ("skip_step", "Can skip a saga step"),
            ("resolve_run", "Can mark a saga run resolved"),
        ]

    def __str__(self) -> str:
        return f"{self.saga_type}#{self.pk} ({self.subject_id}) {self.status}"

    # Transitions change the row only; services and the executor save and audit.
    # `by`/`description` feed django-fsm-log's StateLog (by=None: the system).

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=S.RUNNING, target=S.COMPLETED)
    def complete(self, by=None, description=None) -> None:
        self.next_attempt_at = None

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=[S.RUNNING, S.FAILED], target=S.COMPENSATING)
    def start_compensating(self, by=None, description=None) -> None:
        self.direction = Direction.COMPENSATE

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=S.COMPENSATING, target=S.COMPENSATED)
    def finish_compensating(self, by=None, description=None) -> None:
        self.next_attempt_at = None

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=S.RUNNING, target=S.FAILED)
    def fail(self, by=None, description=None) -> None:
        self.next_attempt_at = None

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=S.COMPENSATING, target=S.COMPENSATION_FAILED)
    def fail_compensation(self, by=None, description=None) -> None:
        self.next_attempt_at = None

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=S.FAILED, target=S.RUNNING)
    def resume(self, by=None, description=None) -> None:
        pass

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=S.COMPENSATION_FAILED, target=S.COMPENSATING)
    def resume_compensating(self, by=None, description=None) -> None:
        pass

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=[S.FAILED, S.COMPENSATION_FAILED], target=S.RESOLVED)
    def resolve(self, by=None, description=None) -> None:
        self.next_attempt_at = None


class SagaStepLog(models.Model):
    """One row per attempt: the timeline support reads."""

    run = models.ForeignKey(SagaRun, on_delete=models.CASCADE, related_name="step_logs")
    step = models.CharField(max_length=64)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    attempt = models.PositiveIntegerField()
    outcome = models.CharField(max_length=16, choices=StepOutcome.choices)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=128, blank=True)
    started_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["run", "id"], name="sagas_steplog_run")]

    def __str__(self) -> str:
        return f"{self.step}/{self.direction} #{self.attempt}: {self.outcome}"


class SagaAction(models.Model):
    """A manual operation by a person: who, why, and what it changed."""

    run = models.ForeignKey(SagaRun, on_delete=models.CASCADE, related_name="actions")
    action = models.CharField(max_length=16, choices=ManualAction.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    by_username = models.CharField(max_length=150, blank=True)  # survives the user's deletion
    reason = models.TextField()
    from_status = models.CharField(max_length=20)
    to_status = models.CharField(max_length=20)
    step = models.CharField(max_length=64, blank=True)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.action} by {self.by_username or 'system'} on run {self.run_id}"
