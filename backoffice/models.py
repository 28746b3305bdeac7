"""backoffice owns these tables (DESIGN §1): what staff did here, and the requests
that wait for a second person.

StaffAction doubles as the double-submit guard: every action form carries a one-time
key, and the row with that (unique) key is written in the action's own transaction.
A second submit of the same form meets the unique index and changes nothing; if the
action fails, the row rolls back with it and the form may be sent again.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_fsm import FSMField, FSMModelMixin, transition
from django_fsm_log.decorators import fsm_log_by, fsm_log_description

from core.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS


class StaffAction(models.Model):
    key = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=48)
    # What it was about, as plain references (never foreign keys into other apps).
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    target = models.CharField(max_length=128, blank=True, default="")
    reason = models.TextField()
    outcome = models.TextField(blank=True, default="")
    # Money the action moved on this person's word alone (no approval): what the
    # per-person daily limit of the approval rule counts (operations.needs_approval).
    amount = models.DecimalField(
        max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, null=True, blank=True
    )
    currency = models.CharField(max_length=3, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["user", "created_at"],
                condition=models.Q(amount__isnull=False),
                name="bo_staff_action_money_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target} by {self.user_id}"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Waiting for approval"
    APPROVED = "approved", "Approved and carried out"
    REJECTED = "rejected", "Rejected"


class ApprovalKind(models.TextChoices):
    """What finance sees an approval as (each money-moving operation declares one)."""

    REFUND = "refund", "Refund"
    CANCEL = "cancel", "Cancel the order"
    REMEDIATION = "remediation", "Incident remediation"
    DISMISSAL = "dismissal", "Dismiss an incident with money at risk"


class ApprovalRequest(FSMModelMixin, models.Model):
    """A money-moving action above BACKOFFICE_APPROVAL_THRESHOLD: one person asks,
    another person from finance approves (then exactly the stored operation runs, with
    the stored parameters, as the person who asked) or rejects it."""

    # The operation (backoffice.operations) and the parameters it runs with; `kind`
    # is what finance sees it as (refund, cancel, remediation).
    operation = models.CharField(max_length=48)
    params = models.JSONField(default=dict, blank=True)
    kind = models.CharField(max_length=16, choices=ApprovalKind.choices)
    status = FSMField(default=ApprovalStatus.PENDING, choices=ApprovalStatus.choices, protected=True)
    # What it is about, as plain references (never foreign keys into other apps). A
    # remediation may be about a charge with no order (an orphan).
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    incident_id = models.BigIntegerField(null=True, blank=True)
    amount = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    currency = models.CharField(max_length=3)
    reason = models.TextField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True, default="")
    refund_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "requested_at"], name="bo_approval_status_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="bo_approval_amount_positive"),
            # The four-eyes rule, also in the database.
            models.CheckConstraint(
                condition=models.Q(decided_by__isnull=True) | ~models.Q(decided_by=models.F("requested_by")),
                name="bo_approval_second_person",
            ),
        ]
        permissions = [
            ("request_refund", "Can ask for a refund from the back office"),
            ("approve_refund", "Can approve a large refund asked for by someone else"),
        ]

    def __str__(self) -> str:
        return f"Approval {self.pk}: {self.kind} {self.amount} {self.currency} ({self.status})"

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=ApprovalStatus.PENDING, target=ApprovalStatus.APPROVED)
    def approve(self, *, refund_id: int | None = None, by=None, description=None) -> None:
        self.refund_id = refund_id
        self._decided(by, description)

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=ApprovalStatus.PENDING, target=ApprovalStatus.REJECTED)
    def reject(self, by=None, description=None) -> None:
        self._decided(by, description)

    def _decided(self, by, description) -> None:
        self.decided_by = by
        self.decided_at = timezone.now()
        self.decision_reason = description or ""


class EscalationStatus(models.TextChoices):
    SENDING = "sending", "Being sent"  # claimed; a crash here leaves it so (never sent twice)
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (sent again by the next run)"


class SlaEscalation(models.Model):
    """An item that stayed in a waiting state past its escalate_after limit, e-mailed to
    its group (backoffice.sla). At most one row per (state, subject): the unique index is
    the "e-mailed at most once" guard, and the row is the record of it."""

    state = models.CharField(max_length=32)  # a key of backoffice.conf.SLA_DEFAULTS
    subject_id = models.BigIntegerField()  # the payment, refund, order or incident id
    order_id = models.BigIntegerField(null=True, blank=True)
    group = models.CharField(max_length=16)  # finance | oncall
    recipients = models.TextField(blank=True, default="")
    age_seconds = models.PositiveIntegerField()  # how long it had waited when escalated
    status = models.CharField(
        max_length=16, choices=EscalationStatus.choices, default=EscalationStatus.SENDING
    )
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["state", "subject_id"], name="bo_sla_escalation_once"),
        ]

    def __str__(self) -> str:
        return f"{self.state} #{self.subject_id} → {self.group} ({self.status})"


class BulkJobState(models.TextChoices):
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    STOPPED = "stopped", "Stopped by a person"


class BulkItemState(models.TextChoices):
    PENDING = "pending", "Waiting"
    RUNNING = "running", "Started (calls the provider)"
    DONE = "done", "Done"
    APPROVAL = "approval", "Waits for approval"
    SKIPPED = "skipped", "Not possible now"
    FAILED = "failed", "Failed"


class BulkJob(models.Model):
    """One staff action over every saga run or incident a filter matched (backoffice.bulk).

    Durable: the items are rows, each with its own state, so a worker that dies
    loses nothing; the job's lease says a worker is on it, and the sweeper
    (backoffice.bulk_resume) hands a job whose lease ran out to another worker."""

    key = models.CharField(max_length=64, unique=True)  # the confirm form's one-time key
    page = models.CharField(max_length=16)  # "saga" | "incident": what the items are
    op = models.CharField(max_length=48)  # the operation's form value on its page
    label = models.CharField(max_length=128)
    params = models.JSONField(default=dict, blank=True)  # e.g. the remediation to run
    filters = models.JSONField(default=dict, blank=True)  # as the person chose them, for the page
    money = models.JSONField(default=dict, blank=True)  # {currency: amount} the preview showed
    reason = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=BulkJobState.choices, default=BulkJobState.RUNNING)
    total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Which task runs it now, until when; heartbeat_at: when it last made progress.
    lease_owner = models.CharField(max_length=64, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["lease_expires_at"], name="bo_bulkjob_running", condition=models.Q(state="running")
            )
        ]

    def __str__(self) -> str:
        return f"Bulk job {self.pk}: {self.label} ({self.state})"


class BulkItem(models.Model):
    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="items")
    subject_id = models.BigIntegerField()  # the saga run or incident
    order_id = models.BigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=BulkItemState.choices, default=BulkItemState.PENDING)
    outcome = models.TextField(blank=True, default="")
    action_key = models.CharField(max_length=64, blank=True, default="")  # its StaffAction's key
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["job", "subject_id"], name="bo_bulkitem_once_per_job")]
        indexes = [models.Index(fields=["job", "state", "id"], name="bo_bulkitem_job_state")]

    def __str__(self) -> str:
        return f"Bulk item {self.pk} ({self.state})"
