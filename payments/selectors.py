"""Reads of the payments app: ids in, frozen dataclasses and plain values out."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce

from core.errors import NotFound

from .dto import PaymentDTO, ProviderAttemptDTO, RefundDTO
from .models import LedgerEntry, LedgerTransaction, Payment, ProviderAttempt, Refund


def payment_get(*, payment_id: int) -> PaymentDTO:
    payment = Payment.objects.filter(pk=payment_id).first()
    if payment is None:
        raise NotFound(
            f"Payment {payment_id} does not exist.",
            code="payment_not_found",
            details={"payment_id": payment_id},
        )
    return PaymentDTO.from_model(payment)


def payment_for_order(*, order_id: int) -> PaymentDTO | None:
    """The checkout payment of an order, or None if the saga has not created it yet."""
    payment = Payment.objects.filter(order_id=order_id).first()
    return None if payment is None else PaymentDTO.from_model(payment)


def refund_get(*, refund_id: int) -> RefundDTO:
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None:
        raise NotFound(
            f"Refund {refund_id} does not exist.", code="refund_not_found", details={"refund_id": refund_id}
        )
    return RefundDTO.from_model(refund)


def refunds_for_payment(*, payment_id: int) -> list[RefundDTO]:
    """Oldest first."""
    return [RefundDTO.from_model(r) for r in Refund.objects.filter(payment_id=payment_id).order_by("id")]


def provider_attempts_for_payment(*, payment_id: int) -> list[ProviderAttemptDTO]:
    """The provider-call timeline of a payment (charges, refunds, lookups), oldest first."""
    attempts = ProviderAttempt.objects.filter(payment_id=payment_id).order_by("id")
    return [ProviderAttemptDTO.from_model(a) for a in attempts]


def ledger_account_balance(*, code: str, currency: str) -> Decimal:
    """Sum of the account's signed entries (debit positive). provider_clearing's
    balance is what the provider holds for us: captured minus refunded."""
    total = LedgerEntry.objects.filter(account__code=code, account__currency=currency).aggregate(
        total=Coalesce(Sum("amount"), Decimal("0"))
    )["total"]
    return Decimal(total)


def ledger_unbalanced_transactions() -> list[int]:
    """Ids of ledger transactions whose entries do not sum to zero, have fewer than
    two entries, or mix currencies — one grouped query. On PostgreSQL the commit-time
    trigger makes this empty; it is the check for SQLite and for reconciliation."""
    rows = (
        LedgerTransaction.objects.annotate(
            total=Coalesce(Sum("entries__amount"), Decimal("0")),
            entry_count=Count("entries"),
            foreign=Count("entries", filter=~Q(entries__currency=F("currency"))),
        )
        .filter(~Q(total=0) | Q(entry_count__lt=2) | Q(foreign__gt=0))
        .order_by("id")
        .values_list("id", flat=True)
    )
    return list(rows)
