"""Inventory states and enums (DESIGN §2)."""

from django.db import models


class ReservationState(models.TextChoices):
    HELD = "held", "Held"
    COMMITTED = "committed", "Committed"
    RELEASED = "released", "Released"
    # A committed reservation whose confirmed order was cancelled: the units went
    # back on the shelf (the cancellation saga's restock step).
    RETURNED = "returned", "Returned"


class MovementKind(models.TextChoices):
    ADJUST = "adjust", "Adjustment"
    SALE = "sale", "Sale"
    RETURN = "return", "Return"
