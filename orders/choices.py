"""Order states and failure reasons (DESIGN §2)."""

from django.db import models


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed"
    # A confirmed order being undone: refund and restock run before it is cancelled.
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"


class FailureReason(models.TextChoices):
    OUT_OF_STOCK = "out_of_stock", "Out of stock"
    PAYMENT_DECLINED = "payment_declined", "Payment declined"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    CANCELLED_BY_CLIENT = "cancelled_by_client", "Cancelled by the client"
    CANCELLED_BY_STAFF = "cancelled_by_staff", "Cancelled by staff"


# Only a person can undo a confirmed order; the checkout's failures happen before confirmation.
CANCELLATION_REASONS = frozenset({FailureReason.CANCELLED_BY_CLIENT, FailureReason.CANCELLED_BY_STAFF})
