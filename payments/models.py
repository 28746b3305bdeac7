"""payments owns these tables (DESIGN §1): payments, provider attempts, refunds and
the double-entry ledger. An order is known only by its id."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import F, Q
from django_fsm import FSMField, FSMModelMixin, transition
from django_fsm_log.decorators import fsm_log_by, fsm_log_description

from core.money import CURRENCY_CHOICES, MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS

from .choices import (
    LedgerAccountCode,
    LedgerTransactionKind,
    PaymentStatus,
    ProviderAttemptKind,
    ProviderAttemptOutcome,
    RefundStatus,
)

# Staff may settle a payment or refund by hand (after checking the provider's
# dashboard); the admin asks has_transition_perm for these.
RESOLVE_PAYMENT_PERM = "payments.resolve_payment"
RESOLVE_REFUND_PERM = "payments.resolve_refund"


def new_provider_key() -> str:
    """The idempotency key a payment or refund sends the provider: random, fixed at
    creation, so it is unique by construction — a database restored or recreated
    against the same provider account can never replay another payment's charge
    (issue 13, item 4). Rows older than migration 0006 keep the key they sent."""
    return str(uuid.uuid4())


def _provider_key(max_length: int = 64):
    return models.CharField(
        max_length=max_length,
        unique=True,
        default=new_provider_key,
        editable=False,
        help_text="Sent to the provider as Idempotency-Key on every attempt; random, fixed at creation.",
    )


def _money(**kwargs):
    return models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs)


class Payment(FSMModelMixin, models.Model):
    """The checkout payment of one order. Transitions change this row only; the
    services in payments/services.py own locking, saving, audit and the ledger."""

    # One checkout payment per order: a retried saga step finds the same row.
    order_id = models.BigIntegerField(unique=True)
    amount = _money()
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    payment_method = models.CharField(max_length=255, help_text="Provider token, e.g. pm_card_ok.")
    status = FSMField(default=PaymentStatus.PENDING, choices=PaymentStatus.choices, protected=True)
    provider_charge_id = models.CharField(max_length=255, null=True, blank=True)
    failure_code = models.CharField(max_length=64, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    refunded_amount = _money(default=0)
    provider_key = _provider_key()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("resolve_payment", "Can settle a pending or unknown payment by hand")]
        indexes = [models.Index(fields=["status", "updated_at"], name="payment_status_updated_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_charge_id"],
                condition=Q(provider_charge_id__isnull=False),
                name="payment_provider_charge_id_unique",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="payment_refunded_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"Payment {self.pk} (order {self.order_id}, {self.amount} {self.currency}, {self.status})"

    @property
    def charge_idempotency_key(self) -> str:
        """Fixed per payment and identical on every retry (DESIGN §3), so the provider
        never charges twice for one payment; random, so no other payment (of this
        database or an earlier one against the same provider) ever shares it."""
        return self.provider_key

    @property
    def refundable_amount(self):
        return self.amount - self.refunded_amount

    # --- transitions: no I/O, no save() --------------------------------------

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=status,
        source=[PaymentStatus.PENDING, PaymentStatus.UNKNOWN],
        target=PaymentStatus.CAPTURED,
        permission=RESOLVE_PAYMENT_PERM,
    )
    def capture(self, *, provider_charge_id: str, by=None, description: str | None = None) -> None:
        self.provider_charge_id = provider_charge_id
        self.failure_code = ""

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=status,
        source=[PaymentStatus.PENDING, PaymentStatus.UNKNOWN],
        target=PaymentStatus.FAILED,
        permission=RESOLVE_PAYMENT_PERM,
    )
    def fail(self, *, failure_code: str, by=None, description: str | None = None) -> None:
        self.failure_code = failure_code

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=PaymentStatus.PENDING, target=PaymentStatus.UNKNOWN)
    def mark_unknown(self, *, error: str, by=None, description: str | None = None) -> None:
        self.last_error = error

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=status,
        source=[PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED],
        target=PaymentStatus.PARTIALLY_REFUNDED,
    )
    def refund_partially(self, *, by=None, description: str | None = None) -> None:
        pass

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=status,
        source=[PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED],
        target=PaymentStatus.REFUNDED,
    )
    def refund_fully(self, *, by=None, description: str | None = None) -> None:
        pass


class ProviderAttempt(models.Model):
    """One row per call to the provider: the timeline support reads when a payment
    is in doubt. Written whatever the outcome, never changed.

    `payment` is empty only for a refund of a charge no payment knows (an orphan
    charge reconciliation gives back); `charge_id` names the provider charge the
    call was about, so those attempts are found too."""

    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, related_name="attempts", null=True, blank=True
    )
    refund = models.ForeignKey(
        "Refund", on_delete=models.PROTECT, related_name="attempts", null=True, blank=True
    )
    charge_id = models.CharField(
        max_length=255, blank=True, default="", help_text="The provider charge the call was about."
    )
    kind = models.CharField(max_length=16, choices=ProviderAttemptKind.choices)
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    outcome = models.CharField(max_length=16, choices=ProviderAttemptOutcome.choices)
    provider_object_id = models.CharField(max_length=255, blank=True, default="")
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # The provider client's id for this call (sent as X-Request-Id, and on every log
    # line about it as provider_attempt_id): from the timeline to the logs.
    attempt_id = models.CharField(max_length=40, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["payment_id", "id"]
        indexes = [
            models.Index(fields=["charge_id"], condition=~Q(charge_id=""), name="provider_attempt_charge_idx")
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(payment__isnull=False) | (Q(kind=ProviderAttemptKind.REFUND) & ~Q(charge_id="")),
                name="provider_attempt_payment_or_refunded_charge",
            )
        ]

    def __str__(self) -> str:
        about = f"payment {self.payment_id}" if self.payment_id else f"charge {self.charge_id}"
        return f"{self.kind} attempt {self.pk} on {about}: {self.outcome}"


class Refund(FSMModelMixin, models.Model):
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = _money()
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    status = FSMField(default=RefundStatus.PENDING, choices=RefundStatus.choices, protected=True)
    provider_refund_id = models.CharField(max_length=255, null=True, blank=True)
    # The caller's key for this refund (a saga step, a back-office form, a
    # remediation): asking again with it finds this row instead of a second refund.
    idempotency_key = models.CharField(max_length=255, unique=True)
    # Sent to the provider on every retry of this refund, so it refunds once
    # (rows older than migration 0006 kept their caller's key, up to 255 characters).
    provider_key = _provider_key(max_length=255)
    reason = models.TextField(blank=True, default="")
    failure_code = models.CharField(max_length=64, blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        permissions = [("resolve_refund", "Can settle a pending refund by hand")]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_refund_id"],
                condition=Q(provider_refund_id__isnull=False),
                name="refund_provider_refund_id_unique",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"Refund {self.pk} of payment {self.payment_id} ({self.amount} {self.currency}, {self.status})"

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=status,
        source=RefundStatus.PENDING,
        target=RefundStatus.SUCCEEDED,
        permission=RESOLVE_REFUND_PERM,
    )
    def succeed(self, *, provider_refund_id: str, by=None, description: str | None = None) -> None:
        self.provider_refund_id = provider_refund_id

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=status,
        source=RefundStatus.PENDING,
        target=RefundStatus.FAILED,
        permission=RESOLVE_REFUND_PERM,
    )
    def fail(self, *, failure_code: str, by=None, description: str | None = None) -> None:
        self.failure_code = failure_code


# --- Double-entry ledger -------------------------------------------------------
# Amounts are signed: debit positive, credit negative. Every transaction's entries
# sum to zero, checked by ledger_post and, on PostgreSQL, by a deferred constraint
# trigger at commit (migration 0002). The ledger is append-only: corrections are
# new adjustment transactions.


class LedgerAccount(models.Model):
    code = models.CharField(max_length=32, choices=LedgerAccountCode.choices)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)

    class Meta:
        ordering = ["code", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["code", "currency"], name="ledger_account_code_currency_unique")
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.currency})"


class LedgerTransaction(models.Model):
    kind = models.CharField(max_length=16, choices=LedgerTransactionKind.choices)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_transactions"
    )
    refund = models.ForeignKey(
        Refund, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_transactions"
    )
    # Unique: one posting per business event, even if a caller posts twice.
    reference = models.CharField(max_length=255, unique=True)
    memo = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # A time range of captures and refunds (the read models' drift check reads a
            # few days at a time): BRIN, as rows arrive in time order — a few pages, and
            # next to nothing per INSERT. The ledger's balance readers (LedgerBalanceByHour)
            # read the cutoff's own hour of entries through it too.
            BrinIndex(fields=["created_at"], name="ledger_tx_created_brin"),
        ]
        constraints = [
            # A payment is captured once and a refund succeeds once: the database
            # refuses a second posting even if a service were wrong.
            models.UniqueConstraint(
                fields=["payment"],
                condition=Q(kind=LedgerTransactionKind.CAPTURE),
                name="ledger_one_capture_per_payment",
            ),
            models.UniqueConstraint(
                fields=["refund"],
                condition=Q(kind=LedgerTransactionKind.REFUND),
                name="ledger_one_posting_per_refund",
            ),
        ]

    def __str__(self) -> str:
        return f"Ledger transaction {self.pk} ({self.kind}, {self.reference})"


class LedgerEntry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries")
    amount = _money(help_text="Signed: debit positive, credit negative.")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)

    class Meta:
        ordering = ["transaction_id", "id"]
        verbose_name_plural = "ledger entries"
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_amount_nonzero")]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.amount} {self.currency}"


class LedgerBalanceByHour(models.Model):
    """Running balance of each ledger account: per account, whole UTC hour of the
    transaction's created_at, and shard, the sum of its entries. The ledger's balance
    readers (ledger_balances_by_currency: clearing_mismatch on every reconciliation pass)
    read whole hours here instead of summing every entry.

    Never written by Python: a statement trigger on LedgerEntry (migration 0008) adds each
    INSERT's entries in the same statement, whoever writes them (ledger_post, a raw
    INSERT); the ledger is append-only, TRUNCATE empties it. `shard` is the database
    transaction id modulo 16: concurrent checkouts posting to the same account rarely wait
    for each other's commit on one row (migration 0008 has the locking argument).
    `ledger_balance_drift` (selectors) recomputes it from the entries."""

    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(max_length=3)  # the entries' (an account has one)
    hour = models.DateTimeField()
    shard = models.SmallIntegerField()
    amount = _money(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "currency", "hour", "shard"], name="ledger_balance_account_hour_shard"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.hour:%Y-%m-%d %H}h/{self.shard}: {self.amount}"


class ProviderWebhookEvent(models.Model):
    """Inbox of the provider's webhook events, one row per event id.

    The provider retries and sometimes duplicates deliveries (DESIGN §5): the
    unique event id makes the second delivery of an event a no-op, and the row is
    written in the same transaction as the payment change it caused, so an event
    is either fully applied and recorded, or neither (and the provider retries).
    """

    event_id = models.CharField(max_length=255, unique=True)
    event_type = models.CharField(max_length=64)
    payload = models.JSONField(help_text="The event as received (after its signature was checked).")
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now_add=True)
    deliveries = models.PositiveIntegerField(default=1, help_text="How many times the provider sent it.")
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=32,
        blank=True,
        default="",
        help_text="What the event did: applied, no_change, ignored, ...",
    )
    note = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["event_type", "first_seen_at"], name="psp_webhook_type_seen_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
