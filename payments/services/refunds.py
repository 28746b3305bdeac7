"""Refunds, locally: requested (pending), then succeeded or failed.

A pending refund reserves its amount under the payment's row lock, so concurrent
requests can never together refund more than was captured; its idempotency key is
fixed when it is created and sent on every retry, so the provider refunds once.
Sending it is provider_flows' job (refund_call / refund_record); these services
change local state only, one transaction each, payment locked before refund.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from core.audit import check_reason, is_person
from core.errors import ConcordError, Conflict

from ..choices import LedgerAccountCode, LedgerTransactionKind, PaymentStatus, RefundStatus
from ..dto import RefundDTO
from ..events import PAYMENT_REFUNDED, REFUND_FAILED, payment_event_record
from ..models import Payment, Refund
from ._common import (
    REFUNDABLE_STATES,
    User,
    apply_transition,
    lock_payment,
    lock_refund_and_payment,
    require_amount,
    require_text,
)
from .ledger import ledger_post_at


def _not_refundable(payment: Payment) -> Conflict:
    return Conflict(
        f"Payment {payment.pk} is {payment.status}; only captured money can be refunded.",
        code="payment_not_refundable",
        details={"payment_id": payment.pk, "status": payment.status},
    )


def pending_refund_total(payment: Payment) -> Decimal:
    """What pending refunds of the payment hold back: it is not refundable again."""
    return sum(
        payment.refunds.filter(status=RefundStatus.PENDING).values_list("amount", flat=True), Decimal(0)
    )


@transaction.atomic
def refund_create(
    *,
    payment_id: int,
    amount: Decimal,
    reason: str,
    by: User = None,
    idempotency_key: str | None = None,
) -> RefundDTO:
    """Request a refund: a pending Refund whose idempotency key the provider call
    reuses on every retry.

    Pending refunds count against the remainder, checked under the payment's row
    lock: two concurrent requests can never together exceed what was captured.
    Without `idempotency_key` each call is a new refund with the deterministic key
    "<payment id>:refund:<n>"; with one (e.g. derived from a saga run and step), a
    repeat returns the first refund and creates nothing.
    """
    payment = lock_payment(payment_id)
    if idempotency_key is not None:
        require_text(idempotency_key, field="idempotency_key", code="idempotency_key_invalid")
        existing = Refund.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.payment_id != payment.pk or existing.amount != amount:
                raise Conflict(
                    f"Refund key {idempotency_key!r} was used for another refund.",
                    code="idempotency_key_reused",
                    details={"refund_id": existing.pk},
                )
            return RefundDTO.from_model(existing)
    amount = require_amount(amount, payment.currency)
    if not isinstance(reason, str):
        raise ConcordError("reason must be a string.", code="reason_invalid")
    if payment.status not in REFUNDABLE_STATES:
        raise _not_refundable(payment)
    remainder = payment.amount - payment.refunded_amount - pending_refund_total(payment)
    if amount > remainder:
        raise ConcordError(
            f"Refund of {amount} {payment.currency} exceeds the refundable {remainder} {payment.currency}.",
            code="refund_exceeds_captured",
            details={"amount": str(amount), "refundable": str(remainder), "currency": payment.currency},
        )
    if idempotency_key is None:
        # Counted under the payment lock, so the sequence number is race-free.
        idempotency_key = f"{payment.pk}:refund:{payment.refunds.count() + 1}"
    refund = Refund.objects.create(
        payment=payment,
        amount=amount,
        currency=payment.currency,
        idempotency_key=idempotency_key,
        reason=reason,
        requested_by=by if is_person(by) else None,
    )
    return RefundDTO.from_model(refund)


@transaction.atomic
def refund_open(
    *,
    payment_id: int,
    amount: Decimal | None = None,
    reason: str,
    by: User = None,
    idempotency_key: str | None = None,
) -> RefundDTO | None:
    """The refund a caller means, found or created — the first half of every refund
    sent to the provider (provider_flows sends it).

    With `idempotency_key`: the refund created under that key (made now on the first
    call). Without: a refund still pending for this payment (with this amount, if
    given) is resumed — a call that timed out before — otherwise a new one is
    created. `amount` None = everything not yet refunded or pending. None when
    nothing is left to refund."""
    reason = check_reason(reason, by=by)
    if idempotency_key is not None:
        require_text(idempotency_key, field="idempotency_key", code="idempotency_key_invalid")
        existing = Refund.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.payment_id != payment_id:
                raise Conflict(
                    f"Refund key {idempotency_key!r} belongs to another payment.",
                    code="idempotency_key_reused",
                    details={"refund_id": existing.pk},
                )
            return RefundDTO.from_model(existing)
    else:
        pending = Refund.objects.filter(payment_id=payment_id, status=RefundStatus.PENDING)
        if amount is not None:
            pending = pending.filter(amount=amount)
        resumed = pending.order_by("id").first()
        if resumed is not None:
            return RefundDTO.from_model(resumed)
    if amount is None:
        payment = lock_payment(payment_id)
        if payment.status == PaymentStatus.REFUNDED:
            return None
        if payment.status not in REFUNDABLE_STATES:
            raise _not_refundable(payment)
        amount = payment.amount - payment.refunded_amount - pending_refund_total(payment)
        if amount <= 0:
            return None
    return refund_create(
        payment_id=payment_id, amount=amount, reason=reason, by=by, idempotency_key=idempotency_key
    )


@transaction.atomic
def refund_succeed(*, refund_id: int, provider_refund_id: str, by: User = None, reason: str) -> RefundDTO:
    """The provider refunded: refund pending -> succeeded, the payment moves to
    partially_refunded or refunded, and the money leaves the ledger
    (Dr customer_funds / Cr provider_clearing)."""
    require_text(provider_refund_id, field="provider_refund_id", code="provider_refund_id_invalid")
    refund, payment = lock_refund_and_payment(refund_id)
    if refund.status == RefundStatus.SUCCEEDED:
        if refund.provider_refund_id != provider_refund_id:
            raise Conflict(
                f"Refund {refund_id} succeeded as {refund.provider_refund_id}.",
                code="provider_refund_id_mismatch",
                details={"refund_id": refund_id, "provider_refund_id": refund.provider_refund_id},
            )
        return RefundDTO.from_model(refund)  # already succeeded: no-op
    if Refund.objects.filter(provider_refund_id=provider_refund_id).exclude(pk=refund_id).exists():
        raise Conflict(
            f"Provider refund {provider_refund_id} already belongs to another refund.",
            code="provider_refund_id_taken",
            details={"provider_refund_id": provider_refund_id},
        )
    apply_transition(refund, "succeed", provider_refund_id=provider_refund_id, by=by, description=reason)
    refunded = payment.refunded_amount + refund.amount
    if refunded > payment.amount:  # cannot happen while refund_create reserves pending amounts
        raise Conflict(
            f"Refund {refund_id} would refund more than payment {payment.pk} captured.",
            code="refund_exceeds_captured",
        )
    payment_transition = "refund_fully" if refunded == payment.amount else "refund_partially"
    apply_transition(payment, payment_transition, by=by, description=reason)
    payment.refunded_amount = refunded
    refund.save()
    payment.save()
    _, ledger_at = ledger_post_at(
        kind=LedgerTransactionKind.REFUND,
        currency=payment.currency,
        entries=[
            (LedgerAccountCode.CUSTOMER_FUNDS, refund.amount),
            (LedgerAccountCode.PROVIDER_CLEARING, -refund.amount),
        ],
        reference=f"refund:{refund.pk}",
        payment_id=payment.pk,
        refund_id=refund.pk,
        memo=f"Refund {provider_refund_id} of charge {payment.provider_charge_id}",
    )
    payment_event_record(PAYMENT_REFUNDED, payment, refund, ledger_at=ledger_at)
    return RefundDTO.from_model(refund)


@transaction.atomic
def refund_fail(*, refund_id: int, failure_code: str, by: User = None, reason: str) -> RefundDTO:
    """The provider refused the refund: pending -> failed. The amount it reserved
    becomes refundable again; no money moved, nothing is posted."""
    require_text(failure_code, field="failure_code", code="failure_code_invalid")
    refund, payment = lock_refund_and_payment(refund_id)
    if refund.status == RefundStatus.FAILED:
        return RefundDTO.from_model(refund)  # already failed: no-op
    apply_transition(refund, "fail", failure_code=failure_code, by=by, description=reason)
    refund.save()
    payment_event_record(REFUND_FAILED, payment, refund)
    return RefundDTO.from_model(refund)
