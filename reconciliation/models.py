"""reconciliation owns these tables (DESIGN §1).

Provider records are reconciliation's own synced copy of the provider's facts: they are
compared with Concord's rows, never written into them. Incidents are the disagreements a
person (or a re-check) must close.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import FSMField, transition
from django_fsm_log.decorators import fsm_log_by, fsm_log_description

from core.money import CURRENCY_CHOICES, MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS

from .choices import (
    LIVE_STATES,
    IncidentState,
    IncidentType,
    ProviderObjectKind,
    RemediationState,
    ResolutionKind,
    RunStatus,
    Severity,
)


def _money(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs)


# --- Provider records ---------------------------------------------------------


class ProviderCharge(models.Model):
    """One charge as the provider reports it. `reference` is the Concord order id."""

    provider_id = models.CharField(max_length=64, unique=True)
    reference = models.CharField(max_length=64, db_index=True)
    # The reference read as a Concord order id when it is one (digits), else null: detectors
    # join it to orders and payments integer to integer, so the join can use their indexes.
    order_id = models.BigIntegerField(null=True, blank=True)
    amount_minor = models.BigIntegerField()
    amount = _money()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=32)
    failure_code = models.CharField(max_length=64, null=True, blank=True)
    # The provider's own running total at the last sync; refunds are also synced on their
    # own (ProviderRefund) because an incremental pull by `created` never revisits an old
    # charge whose refunded total changed later.
    amount_refunded_minor = models.BigIntegerField(default=0)
    amount_refunded = _money(default=0)
    created = models.DateTimeField(help_text="Provider time")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["created"], name="recon_pcharge_created"),
            models.Index(fields=["reference", "status"], name="recon_pcharge_ref_status"),
            models.Index(fields=["order_id"], name="recon_pcharge_order"),
            # An incremental pass asks "which charges did the last syncs touch?".
            models.Index(fields=["last_synced_at"], name="recon_pcharge_synced"),
        ]

    def __str__(self) -> str:
        return f"{self.provider_id} {self.amount} {self.currency} {self.status}"


class ProviderRefund(models.Model):
    provider_id = models.CharField(max_length=64, unique=True)
    charge_provider_id = models.CharField(max_length=64, db_index=True)
    amount_minor = models.BigIntegerField()
    amount = _money()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=32)
    created = models.DateTimeField(help_text="Provider time")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["created"], name="recon_prefund_created"),
            models.Index(fields=["last_synced_at"], name="recon_prefund_synced"),
        ]

    def __str__(self) -> str:
        return f"{self.provider_id} {self.amount} {self.currency} {self.status}"


class ProviderNetByHour(models.Model):
    """Running balance of the provider's succeeded charges: per currency and provider
    hour (`created` binned to whole UTC hours), the sum of their amounts. clearing_mismatch
    reads whole hours before its cutoff here instead of summing every charge on every pass.

    Never written by Python: statement triggers on ProviderCharge (migration 0009) move it
    in the same statement as every INSERT, UPDATE, DELETE or TRUNCATE of the charges,
    whoever writes them (the sync, a shell, a raw INSERT), so it cannot drift from them
    while the triggers are in place; `provider_net_drift` (selectors) recomputes it from the
    rows to prove that (the `reconcile --verify-balances` check)."""

    currency = models.CharField(max_length=3)
    hour = models.DateTimeField()
    net = _money(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["currency", "hour"], name="recon_pnet_currency_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.currency} net {self.net}"


class ProviderOrderCaptures(models.Model):
    """Per order id, how many of its provider charges still hold money as far as the
    charge row shows: succeeded and amount_refunded_minor < amount_minor. The full pass's
    shared join reads the orders with more than one here (duplicate_charge's candidates)
    instead of counting every order's charges on every full pass.

    Kept like ProviderNetByHour: statement triggers on ProviderCharge (migration 0010) move
    it in the same statement as every write of the charges; `provider_captures_drift`
    (selectors) recomputes it from the rows (the same hourly check)."""

    order_id = models.BigIntegerField(primary_key=True)
    open_charges = models.IntegerField(default=0)

    class Meta:
        indexes = [
            # duplicate candidates: the few orders with two or more
            models.Index(fields=["order_id"], name="recon_pcaptures_many", condition=Q(open_charges__gt=1)),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.open_charges} open charge(s)"


class SyncCursor(models.Model):
    """How far the incremental pull of one kind of provider object has got."""

    kind = models.CharField(max_length=16, choices=ProviderObjectKind.choices, unique=True)
    # Largest provider `created` (unix seconds) seen so far, and the id of that object.
    last_created = models.BigIntegerField(null=True, blank=True)
    last_id = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.kind}@{self.last_created}"


class ProviderSettlement(models.Model):
    """The provider's settlement export: per day and currency, what it paid out."""

    date = models.DateField()
    currency = models.CharField(max_length=3)
    charges_count = models.PositiveIntegerField(default=0)
    charges = _money(default=0)
    refunds_count = models.PositiveIntegerField(default=0)
    refunds = _money(default=0)
    net = _money(default=0)
    # The provider's own line, as sent (minor units), for audit.
    raw = models.JSONField(default=dict, blank=True)
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["date", "currency"], name="recon_settlement_day_currency"),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.currency} net {self.net}"


# --- Incidents ----------------------------------------------------------------


class Incident(models.Model):
    type = models.CharField(max_length=48, choices=IncidentType.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    state = FSMField(default=IncidentState.OPEN, choices=IncidentState.choices, protected=True)
    # Stable identity of the condition, e.g. "duplicate_charge:42". At most one live
    # (open/acknowledged) incident per fingerprint: see the partial unique constraint.
    fingerprint = models.CharField(max_length=255)

    # Subject references: plain columns, never foreign keys into other apps (BRIEF).
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    payment_id = models.BigIntegerField(null=True, blank=True)
    charge_id = models.CharField(max_length=64, null=True, blank=True)
    sku = models.CharField(max_length=64, null=True, blank=True)
    saga_run_id = models.BigIntegerField(null=True, blank=True)

    amount_at_risk = _money(default=0)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, blank=True, default="")
    details = models.JSONField(default=dict, blank=True)

    detected_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set when the incident leaves the live states (resolved or dismissed);
    # resolution_kind tells which way. `resolved_by` is None for the system.
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution_kind = models.CharField(max_length=16, choices=ResolutionKind.choices, blank=True, default="")
    resolution_reason = models.TextField(blank=True, default="")
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reopened_count = models.PositiveIntegerField(default=0)
    # When the customer was first told (an apology e-mail, notifications/): the fix
    # of a customer-facing incident is not over until they know.
    customer_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=Q(state__in=LIVE_STATES),
                name="recon_incident_one_live_per_fingerprint",
            ),
        ]
        indexes = [
            models.Index(fields=["type", "state"], name="recon_incident_type_state"),
            models.Index(fields=["detected_at"], name="recon_incident_detected"),
            models.Index(fields=["resolved_at"], name="recon_incident_resolved"),
            models.Index(fields=["fingerprint"], name="recon_incident_fingerprint"),
            # The back office's live incidents (overview, "Needs attention", waiting page,
            # the queue): counts and sums by state, severity and currency are index-only
            # scans of the live set; the queue, worst money first, is read in order.
            models.Index(
                fields=["detected_at"],
                name="recon_incident_live_bo",
                include=["state", "severity", "currency", "amount_at_risk"],
                condition=Q(state__in=LIVE_STATES),
            ),
            models.Index(
                fields=["-amount_at_risk", "detected_at", "id"],
                name="recon_incident_live_money_bo",
                condition=Q(state__in=LIVE_STATES),
            ),
            # The queue filtered by type (and severity): its capped count and its page,
            # worst money first, read only the matching live incidents, in order (without
            # it both read every live incident from the heap to check its type).
            models.Index(
                fields=["type", "severity", "-amount_at_risk", "detected_at", "id"],
                name="recon_incident_live_type_bo",
                include=["state"],
                condition=Q(state__in=LIVE_STATES),
            ),
        ]
        permissions = [
            ("remediate_incident", "Can run an incident's remediation (stock, saga, order)"),
            ("refund_incident", "Can run an incident's remediation that moves money (refunds)"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.type} {self.state}"

    # Transitions: they change this row's fields and nothing else (no I/O, no save).
    # The services lock the row, call them with by=/description=, and save.

    @fsm_log_by
    @fsm_log_description
    @transition(field=state, source=IncidentState.OPEN, target=IncidentState.ACKNOWLEDGED)
    def acknowledge(self, by=None, description=None) -> None:
        self.acknowledged_at = timezone.now()
        self.acknowledged_by = by

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=state,
        source=[IncidentState.OPEN, IncidentState.ACKNOWLEDGED],
        target=IncidentState.RESOLVED,
    )
    def resolve(self, by=None, description=None, kind: str = ResolutionKind.MANUAL) -> None:
        self.resolved_at = timezone.now()
        self.resolved_by = by
        self.resolution_kind = kind
        self.resolution_reason = description or ""

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=state,
        source=[IncidentState.OPEN, IncidentState.ACKNOWLEDGED],
        target=IncidentState.DISMISSED,
    )
    def dismiss(self, by=None, description=None) -> None:
        self.resolved_at = timezone.now()
        self.resolved_by = by
        self.resolution_kind = ResolutionKind.DISMISSED
        self.resolution_reason = description or ""

    @fsm_log_by
    @fsm_log_description
    @transition(field=state, source=IncidentState.RESOLVED, target=IncidentState.OPEN)
    def reopen(self, by=None, description=None) -> None:
        """Only after a manual resolution whose re-check found the condition still there."""
        self.resolved_at = None
        self.resolved_by = None
        self.resolution_kind = ""
        self.resolution_reason = ""
        self.acknowledged_at = None
        self.acknowledged_by = None
        self.reopened_count += 1


class IncidentNote(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    text = models.TextField()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"note on #{self.incident_id}"


# --- Remediations --------------------------------------------------------------


class Remediation(models.Model):
    """One fix applied to one incident: who, why, what it did, how much money it moved.

    `key` is unique per incident and action, so a second apply (a double click, a retried
    task, the auto policy and a person at once) finds this row instead of acting twice.
    A remediation whose provider call had no answer stays `unknown`; applying it again
    repeats the call with the same idempotency keys, which the provider replays.
    """

    State = RemediationState

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="remediations")
    action = models.CharField(max_length=32)
    key = models.CharField(max_length=96, unique=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING)
    automatic = models.BooleanField(default=False)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.TextField()
    money_moved = _money(default=0)
    currency = models.CharField(max_length=3, blank=True, default="")
    # e.g. {"refunds": [{"charge_id", "refund_id", "amount"}], "stock": [{"sku", "delta"}]}
    effects = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="recon_remediation_created")]

    def __str__(self) -> str:
        return f"{self.action} on #{self.incident_id} {self.state}"


# --- Runs ---------------------------------------------------------------------


class ReconciliationRun(models.Model):
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    # Provider rows fetched by this pass's sync (the size of the change it looked at).
    rows_scanned = models.PositiveIntegerField(default=0)
    found = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    auto_resolved = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    # Per detector: {"found", "opened", "auto_resolved", "seconds"}.
    detectors = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["started_at"], name="recon_run_started")]

    def __str__(self) -> str:
        return f"run #{self.pk} {self.status}"


class DetectorCheckpoint(models.Model):
    """Where each detector's last complete evaluation stands, so the next pass can look
    only at what changed since (DESIGN §7: cost follows the change, not the history).

    `checked_at` is the instant the last complete evaluation (full or incremental) read
    the data; `full_at` the last complete full one. Written in the same transaction as
    that evaluation's incidents, so a failed detector never moves its checkpoint.
    """

    detector = models.CharField(max_length=64, unique=True)
    checked_at = models.DateTimeField()
    full_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.detector} checked {self.checked_at:%Y-%m-%d %H:%M:%S}"
