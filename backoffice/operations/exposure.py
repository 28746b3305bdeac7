"""What the approval rule adds up (issue 13, item 2): the two-person rule cannot be
split into requests that each stay under the threshold.

- per order: what was already refunded, what pending refunds hold, and what pending
  approvals ask for — plus this request — against BACKOFFICE_APPROVAL_THRESHOLD
  (ten refunds of 100, or partial refunds then a cancel, add up);
- per person: what they moved today without a second person — plus this request —
  against BACKOFFICE_APPROVAL_DAILY_LIMIT (splitting across orders adds up too).
"""

from __future__ import annotations

from datetime import datetime, time
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from payments import selectors as payment_selectors
from payments.choices import RefundStatus

from ..models import ApprovalRequest, ApprovalStatus, StaffAction


def order_money_asked(order_id: int | None, currency: str) -> Decimal:
    """Refunded + pending refunds + pending approvals of the order, in `currency`."""
    if order_id is None:
        return Decimal("0")
    total = Decimal("0")
    payment = payment_selectors.payment_for_order(order_id=order_id)
    if payment is not None and payment.currency == currency:
        total += payment.refunded_amount
        total += sum(
            (
                r.amount
                for r in payment_selectors.refunds_for_payment(payment_id=payment.id)
                if r.status == RefundStatus.PENDING
            ),
            Decimal("0"),
        )
    waiting = ApprovalRequest.objects.filter(
        order_id=order_id, status=ApprovalStatus.PENDING, currency=currency
    ).aggregate(total=Sum("amount"))["total"]
    return total + (waiting or Decimal("0"))


def person_money_today(user: Any, currency: str) -> Decimal:
    """What `user` moved today (UTC) on their own word, in `currency`."""
    if user is None or getattr(user, "pk", None) is None:
        return Decimal("0")
    midnight = datetime.combine(timezone.now().date(), time.min, tzinfo=timezone.now().tzinfo)
    moved = StaffAction.objects.filter(
        user_id=user.pk, amount__isnull=False, currency=currency, created_at__gte=midnight
    ).aggregate(total=Sum("amount"))["total"]
    return moved or Decimal("0")


def approval_decisions_serialise(*, order_id: int | None, user: Any) -> None:
    """Inside the deciding transaction: wait for any other decision about the same order,
    then by the same person (always in this order: no deadlock), so each sees what the
    other asked (transaction-scoped advisory locks, released at commit)."""
    keys = []
    if order_id is not None:
        keys.append(f"backoffice-approval:order:{order_id}")
    if user is not None and getattr(user, "pk", None) is not None:
        keys.append(f"backoffice-approval:user:{user.pk}")
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [key])
