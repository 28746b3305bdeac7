"""Order states and failure reasons (DESIGN §2)."""

from django.db import models


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed"
    # Being undone: a confirmed order waits for refund and restock, a pending one
    # for its checkout to compensate; then it is cancelled.
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"


class FailureReason(models.TextChoices):
    OUT_OF_STOCK = "out_of_stock", "Out of stock"
    PAYMENT_DECLINED = "payment_declined", "Payment declined"
    PAYMENT_FAILED = "payment_failed", "Payment failed"
    CANCELLED_BY_CLIENT = "cancelled_by_client", "Cancelled by the client"
    CANCELLED_BY_STAFF = "cancelled_by_staff", "Cancelled by staff"


# The order sagas' type names (declared in orders/sagas.py).
CHECKOUT = "checkout"
ORDER_CANCELLATION = "order_cancellation"

# Only a person can cancel an order (pending or confirmed); the checkout's own failures use the others.
CANCELLATION_REASONS = frozenset({FailureReason.CANCELLED_BY_CLIENT, FailureReason.CANCELLED_BY_STAFF})
