"""State enums of the saga engine (DESIGN §2)."""

from django.db import models


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    COMPENSATING = "compensating", "Compensating"
    COMPENSATED = "compensated", "Compensated"
    FAILED = "failed", "Failed (a person must act)"
    COMPENSATION_FAILED = "compensation_failed", "Compensation failed (a person must act)"
    RESOLVED = "resolved", "Resolved by a person"


# The executor only ever looks at runs in these states.
ACTIVE_STATUSES = (RunStatus.RUNNING, RunStatus.COMPENSATING)
# Runs waiting for a person.
ATTENTION_STATUSES = (RunStatus.FAILED, RunStatus.COMPENSATION_FAILED)


class Direction(models.TextChoices):
    FORWARD = "forward", "Forward"
    COMPENSATE = "compensate", "Compensate"


class StepOutcome(models.TextChoices):
    DONE = "done", "Done"
    RETRY = "retry", "Retry later (transient)"
    FAIL = "fail", "Failed (permanent)"
    TIMEOUT = "timeout", "Timed out (retryable)"
    ERROR = "error", "Raised an exception (retryable)"
    LEASE_EXPIRED = "lease_expired", "Worker lost mid-step (lease expired)"
    SKIPPED = "skipped", "Skipped by a person"


class ManualAction(models.TextChoices):
    RETRY_NOW = "retry_now", "Retry now"
    COMPENSATE = "compensate", "Compensate (abort)"
    SKIP_STEP = "skip_step", "Skip the current step"
    MARK_RESOLVED = "mark_resolved", "Mark resolved"
    REQUEST_ABORT = "request_abort", "Abort requested"


# The Django permission each manual operation needs (granted to support in backoffice/roles.py).
MANUAL_ACTION_PERMISSIONS: dict[str, str] = {
    ManualAction.RETRY_NOW: "sagas.retry_run",
    ManualAction.COMPENSATE: "sagas.compensate_run",
    ManualAction.SKIP_STEP: "sagas.skip_step",
    ManualAction.MARK_RESOLVED: "sagas.resolve_run",
}
