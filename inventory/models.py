"""inventory owns these tables (DESIGN §1).

Stock is two counters per sku (on_hand, reserved) guarded by CHECK constraints, a
reservation per (order, sku) with a small state machine, and an append-only
movement journal so that "on_hand == sum of movements" can be checked at any time
(DESIGN §6, invariant 4).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition
from django_fsm_log.decorators import fsm_log_by, fsm_log_description

from core.money import CURRENCY_CHOICES, MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS

from .choices import MovementKind, ReservationState

SKU_MAX_LENGTH = 64


class Product(models.Model):
    sku = models.CharField(max_length=SKU_MAX_LENGTH, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="product_price_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} ({self.name})"


class StockLevel(models.Model):
    """The two counters of one sku. Changed only by conditional UPDATEs in services.

    The foreign key targets Product.sku (column "sku") so every statement can
    address a row by its sku without a join.
    """

    product = models.OneToOneField(
        Product, to_field="sku", db_column="sku", on_delete=models.PROTECT, related_name="stock"
    )
    on_hand = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product_id"]
        constraints = [
            # The database, not Python, is the last line of defence against overselling.
            models.CheckConstraint(condition=models.Q(on_hand__gte=0), name="stock_on_hand_non_negative"),
            models.CheckConstraint(condition=models.Q(reserved__gte=0), name="stock_reserved_non_negative"),
            models.CheckConstraint(
                condition=models.Q(reserved__lte=models.F("on_hand")), name="stock_reserved_within_on_hand"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.on_hand} on hand, {self.reserved} reserved"

    @property
    def sku(self) -> str:
        return self.product_id

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class Reservation(FSMModelMixin, models.Model):
    """Units of one sku set aside for one order. One row per (order, sku): the
    unique key is what makes the saga's reserve step idempotent."""

    order_id = models.BigIntegerField(db_index=True)
    product = models.ForeignKey(
        Product, to_field="sku", db_column="sku", on_delete=models.PROTECT, related_name="reservations"
    )
    quantity = models.PositiveIntegerField()
    state = FSMField(default=ReservationState.HELD, choices=ReservationState.choices, protected=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order_id", "product_id"]
        constraints = [
            models.UniqueConstraint(fields=["order_id", "product"], name="reservation_one_per_order_and_sku"),
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="reservation_quantity_positive"),
        ]
        indexes = [
            # reserved == sum(held) is checked per sku over held rows only.
            models.Index(fields=["product", "state"], name="reservation_sku_state_idx"),
            # Reconciliation's incremental pass reads the reservations changed since its
            # last pass (cost follows the change, not the history).
            models.Index(fields=["updated_at"], name="reservation_updated_idx"),
        ]
        permissions = [
            ("release_reservation", "Can release held stock of an order"),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.quantity} x {self.product_id} ({self.state})"

    @property
    def sku(self) -> str:
        return self.product_id

    # Transitions change the row only; services own locks, counters and saving.

    @fsm_log_by
    @fsm_log_description
    @transition(field=state, source=ReservationState.HELD, target=ReservationState.COMMITTED)
    def commit(self, *, by=None, description: str | None = None) -> None:
        """The order is confirmed: the units leave the shelf."""

    @fsm_log_by
    @fsm_log_description
    @transition(
        field=state,
        source=ReservationState.HELD,
        target=ReservationState.RELEASED,
        permission="inventory.release_reservation",
        custom={"admin": True, "label": "Release held stock"},
    )
    def release(self, *, by=None, description: str | None = None) -> None:
        """The order will not be fulfilled: the held units become available again."""

    @fsm_log_by
    @fsm_log_description
    @transition(field=state, source=ReservationState.COMMITTED, target=ReservationState.RETURNED)
    def restock(self, *, by=None, description: str | None = None) -> None:
        """A confirmed order was cancelled: the sold units go back on the shelf."""


class StockMovement(models.Model):
    """Append-only journal of on_hand changes: on_hand == sum(delta) per sku.

    Rows are never updated or deleted (save/delete refuse); reservations do not
    move stock, only adjustments, sales and returns do.
    """

    product = models.ForeignKey(
        Product, to_field="sku", db_column="sku", on_delete=models.PROTECT, related_name="movements"
    )
    delta = models.IntegerField()
    kind = models.CharField(max_length=16, choices=MovementKind.choices)
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["product", "kind"], name="movement_sku_kind_idx")]
        constraints = [
            models.CheckConstraint(condition=~models.Q(delta=0), name="movement_delta_non_zero"),
            # Sales take units away, returns bring them back; adjustments go either way.
            models.CheckConstraint(
                condition=~models.Q(kind=MovementKind.SALE) | models.Q(delta__lt=0),
                name="movement_sale_negative",
            ),
            models.CheckConstraint(
                condition=~models.Q(kind=MovementKind.RETURN) | models.Q(delta__gt=0),
                name="movement_return_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} {self.delta:+d} ({self.kind})"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError("stock movements are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("stock movements are append-only")

    @property
    def sku(self) -> str:
        return self.product_id
