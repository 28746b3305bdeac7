"""orders owns these tables (DESIGN §1).

An order knows its products only by sku and its payment only through the
payments app's services: no foreign keys leave this app.
"""

from __future__ import annotations

from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition
from django_fsm_log.decorators import fsm_log_by, fsm_log_description

from core.money import CURRENCY_CHOICES, MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS

from .choices import FailureReason, OrderStatus

MAX_QUANTITY_PER_LINE = 1000
MAX_LINES_PER_ORDER = 100


class Order(FSMModelMixin, models.Model):
    # The API client's user id: every read by a client is scoped by it.
    client_id = models.BigIntegerField()
    customer_email = models.EmailField(max_length=254)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    total = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    payment_method = models.CharField(max_length=64)
    status = FSMField(default=OrderStatus.PENDING, choices=OrderStatus.choices, protected=True)
    failure_reason = models.CharField(max_length=32, choices=FailureReason.choices, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # order_list_for_client: newest first, optionally by status.
            models.Index(fields=["client_id", "-id"], name="order_client_recent_idx"),
            models.Index(fields=["client_id", "status", "-id"], name="order_client_status_idx"),
            models.Index(fields=["status", "updated_at"], name="order_status_updated_idx"),
            # A time range of orders (the read models' drift check reads a few days at a
            # time): BRIN, as rows arrive in time order — next to nothing per INSERT.
            BrinIndex(fields=["created_at"], name="order_created_brin"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(total__gte=0), name="order_total_non_negative"),
            # A reason exactly when the order is (being) cancelled.
            models.CheckConstraint(
                condition=(
                    models.Q(
                        status__in=[OrderStatus.PENDING, OrderStatus.CONFIRMED], failure_reason__isnull=True
                    )
                    | models.Q(
                        status__in=[OrderStatus.CANCELLING, OrderStatus.CANCELLED],
                        failure_reason__isnull=False,
                    )
                ),
                name="order_failure_reason_iff_cancelled",
            ),
        ]
        permissions = [
            ("cancel_order", "Can cancel an order"),
        ]

    def __str__(self) -> str:
        return f"Order {self.pk} ({self.status})"

    # Transitions change the row only; services own the lock, the save and side effects.

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=OrderStatus.PENDING, target=OrderStatus.CONFIRMED)
    def confirm(self, *, by=None, description: str | None = None) -> None:
        """Stock is committed and the payment captured (the checkout saga's last step)."""

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=status,
        source=OrderStatus.PENDING,
        target=OrderStatus.CANCELLED,
        permission="orders.cancel_order",
        custom={"admin": True, "label": "Cancel pending order"},
    )
    def cancel(self, *, failure_reason: str, by=None, description: str | None = None) -> None:
        self.failure_reason = failure_reason

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=status,
        source=OrderStatus.PENDING,
        target=OrderStatus.CANCELLING,
        permission="orders.cancel_order",
    )
    def request_cancellation(self, *, failure_reason: str, by=None, description: str | None = None) -> None:
        """A client or staff member cancelled a pending order whose checkout is
        running: the checkout compensates (release stock, refund a charge already
        made) and its on_compensated hook finishes cancelling -> cancelled."""
        self.failure_reason = failure_reason

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=status,
        source=OrderStatus.CONFIRMED,
        target=OrderStatus.CANCELLING,
        permission="orders.cancel_order",
        custom={"admin": True, "label": "Cancel confirmed order (refund and restock)"},
    )
    def begin_cancellation(self, *, failure_reason: str, by=None, description: str | None = None) -> None:
        self.failure_reason = failure_reason

    @fsm_log_by
    @fsm_log_description
    @transition(field=status, source=OrderStatus.CANCELLING, target=OrderStatus.CANCELLED)
    def finish_cancellation(self, *, by=None, description: str | None = None) -> None:
        """Refund and restock are done (the cancellation saga's last step), or the
        checkout of a cancelled pending order finished compensating."""


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()
    # Copied from the catalog when the order was placed; later price changes do not apply.
    unit_price = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    line_total = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)

    class Meta:
        ordering = ["order_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "sku"], name="order_line_one_per_sku"),
            models.CheckConstraint(
                condition=models.Q(quantity__gte=1, quantity__lte=MAX_QUANTITY_PER_LINE),
                name="order_line_quantity_range",
            ),
            models.CheckConstraint(
                condition=models.Q(unit_price__gte=0), name="order_line_price_non_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(line_total=models.F("unit_price") * models.F("quantity")),
                name="order_line_total_is_price_times_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"
