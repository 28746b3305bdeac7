"""The sandbox provider's own tables. They live only in the sandbox's database
(PSP_DATABASE_URL), never in Concord's."""

from django.db import models


class ChargeStatus(models.TextChoices):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Charge(models.Model):
    # Lists are ordered by (created, seq): `seq` (the integer pk) breaks ties within
    # one second in insertion order, so cursor pagination never skips or repeats.
    public_id = models.CharField(max_length=32, unique=True)
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    payment_method = models.CharField(max_length=255)
    reference = models.CharField(max_length=255, db_index=True)
    status = models.CharField(max_length=16, choices=ChargeStatus.choices)
    failure_code = models.CharField(max_length=64, null=True, blank=True)
    amount_refunded = models.BigIntegerField(default=0)
    created = models.BigIntegerField(help_text="Unix seconds.")

    class Meta:
        indexes = [models.Index(fields=["created", "id"], name="psp_charge_created_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="psp_charge_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(amount_refunded__gte=0)
                & models.Q(amount_refunded__lte=models.F("amount")),
                name="psp_charge_refunded_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id

    def as_api(self) -> dict:
        return {
            "id": self.public_id,
            "object": "charge",
            "status": self.status,
            "failure_code": self.failure_code,
            "amount": self.amount,
            "amount_refunded": self.amount_refunded,
            "currency": self.currency,
            "payment_method": self.payment_method,
            "reference": self.reference,
            "created": self.created,
        }


class Refund(models.Model):
    public_id = models.CharField(max_length=32, unique=True)
    charge = models.ForeignKey(Charge, on_delete=models.CASCADE, related_name="refunds")
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16, default="succeeded")
    created = models.BigIntegerField(help_text="Unix seconds.")

    class Meta:
        indexes = [models.Index(fields=["created", "id"], name="psp_refund_created_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="psp_refund_amount_positive"),
        ]

    def __str__(self) -> str:
        return self.public_id

    def as_api(self) -> dict:
        return {
            "id": self.public_id,
            "object": "refund",
            "charge": self.charge.public_id,
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "created": self.created,
        }


class IdempotencyKey(models.Model):
    """One row per (API key, Idempotency-Key). It is inserted in the same transaction
    as the charge or refund it protects: a concurrent request with the same key blocks
    on the unique index until the first commits, then replays its stored response."""

    api_key_hash = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=64)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key_hash", "key"], name="psp_idempotency_key_unique"),
        ]

    def __str__(self) -> str:
        return self.key


class Faults(models.Model):
    """A single row (pk=1) so every gunicorn worker and thread sees the same faults.
    `draws` counts fault decisions since the faults were set; with a seed, decision n
    depends only on (seed, n), which makes a sequential run reproducible."""

    error_rate = models.FloatField(default=0)
    error_after_commit_rate = models.FloatField(default=0)
    timeout_after_commit_rate = models.FloatField(default=0)
    decline_rate = models.FloatField(default=0)
    duplicate_webhook_rate = models.FloatField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    timeout_seconds = models.FloatField(default=30)
    seed = models.BigIntegerField(null=True, blank=True)
    draws = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return "faults"


class SandboxConfig(models.Model):
    """A single row (pk=1): settings changed at run time, e.g. by tests that receive
    webhooks on a port they chose. Empty webhook_url means "use PSP_WEBHOOK_URL"."""

    webhook_url = models.CharField(max_length=2000, blank=True, default="")
    webhooks_disabled = models.BooleanField(default=False)

    def __str__(self) -> str:
        return "config"


class WebhookDelivery(models.Model):
    """The webhook outbox: written in the transaction that creates the charge or refund,
    delivered by a background thread, retried with backoff until the receiver says 2xx.
    A duplicated event is a second row with the same event_id."""

    event_id = models.CharField(max_length=40, db_index=True)
    event_type = models.CharField(max_length=64)
    payload = models.TextField()
    url = models.CharField(max_length=2000)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.FloatField(help_text="Unix seconds.")
    leased_until = models.FloatField(default=0)
    delivered_at = models.FloatField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["delivered_at", "next_attempt_at"], name="psp_delivery_due_idx")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
