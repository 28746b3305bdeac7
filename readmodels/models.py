"""readmodels owns these tables: copies of facts other apps own, shaped for reading,
fed ONLY by outbox events (readmodels.consumer) and rebuildable from the owners'
tables (readmodels.services.read_models_rebuild). docs/consistency.md says which
fact each copies, and how far behind it may be.

FinanceFact is the finance model's inbox: one row per business fact under a natural
key ("order:17", "capture:5", "refund:9", "incident:3", "incident:3:closed"), so
applying an event twice, or after a rebuild already counted its fact, changes nothing.
FinanceDay is the sum of the facts per day (UTC) and currency, maintained in the same
statement that inserts a new fact.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower

from core.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS


def _money(**kwargs):
    return models.DecimalField(
        max_digits=MONEY_MAX_DIGITS + 4, decimal_places=MONEY_DECIMAL_PLACES, default=0, **kwargs
    )


class FactKind(models.TextChoices):
    ORDER = "order", "Order placed"
    CAPTURE = "capture", "Payment captured"
    REFUND = "refund", "Refund succeeded"
    INCIDENT = "incident", "Incident detected"
    RESOLVED = "resolved", "Incident resolved"
    DISMISSED = "dismissed", "Incident dismissed (false positive)"


class FinanceFact(models.Model):
    key = models.CharField(max_length=64, primary_key=True)
    kind = models.CharField(max_length=16, choices=FactKind.choices)
    day = models.DateField()
    currency = models.CharField(max_length=3, blank=True, default="")
    amount = _money()
    # Time to resolve, to the millisecond (event timestamps are JSON: milliseconds).
    seconds = models.DecimalField(max_digits=14, decimal_places=3, default=0)
    incident_type = models.CharField(max_length=48, blank=True, default="")
    # When the fact became true in its owner's table: the drift check compares facts
    # older than the consumer's lag only.
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["at"], name="readmodels_fact_at"),
            # The drift check compares some days at a time (readmodels.services).
            models.Index(fields=["day", "currency"], name="readmodels_fact_day"),
        ]

    def __str__(self) -> str:
        return self.key


class FinanceDay(models.Model):
    """Sums of FinanceFact per day and currency (plain integers: the statement that
    keeps them adds a new value and subtracts the old one)."""

    day = models.DateField()
    currency = models.CharField(max_length=3, blank=True, default="")
    orders = models.IntegerField(default=0)
    captures = models.IntegerField(default=0)
    revenue = _money()
    refunds = models.IntegerField(default=0)
    refunded = _money()
    incidents = models.IntegerField(default=0)
    money_at_risk = _money()
    dismissed = models.IntegerField(default=0)
    dismissed_at_risk = _money()
    resolved = models.IntegerField(default=0)
    resolve_seconds = models.DecimalField(max_digits=18, decimal_places=3, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "currency"], name="readmodels_financeday_day_currency")
        ]
        ordering = ["day", "currency"]

    def __str__(self) -> str:
        return f"{self.day} {self.currency or '-'}"


class OrderSearch(models.Model):
    """One row per order: what support searches by (id, e-mail, charge id,
    Idempotency-Key, status)."""

    order_id = models.BigIntegerField(primary_key=True)
    client_id = models.BigIntegerField(null=True, blank=True)
    customer_email = models.CharField(max_length=254, blank=True, default="")
    currency = models.CharField(max_length=3, blank=True, default="")
    total = _money()
    status = models.CharField(max_length=16, blank=True, default="")
    failure_reason = models.CharField(max_length=32, blank=True, default="")
    payment_id = models.BigIntegerField(null=True, blank=True)
    payment_status = models.CharField(max_length=24, blank=True, default="")
    charge_id = models.CharField(max_length=255, null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(Lower("customer_email"), "order_id", name="readmodels_search_email"),
            models.Index(fields=["charge_id"], name="readmodels_search_charge"),
            models.Index(fields=["idempotency_key"], name="readmodels_search_key"),
            models.Index(fields=["status", "order_id"], name="readmodels_search_status"),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id} {self.status}"


class DriftCheckState(models.Model):
    """Where the drift check of one model stands (readmodels.services.read_models_check):
    the next slice of older history to compare, the buckets (days, order ids) that
    differed last time (compared again at every check until they agree), and the
    differences the last check saw (a difference seen by two checks in a row counts)."""

    model = models.CharField(max_length=32, primary_key=True)
    cursor = models.CharField(
        max_length=32, blank=True, default=""
    )  # a day (finance) or an order id (search)
    suspects = models.JSONField(default=list)
    seen = models.JSONField(default=list)  # digests of the last check's differences
    checked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.model} drift check at {self.cursor or 'the start'}"
