"""A payment's lifecycle: created pending, then captured, failed or unknown.

One service per state change, each one transaction: it locks the payment, applies
the audited transition, saves, and posts to the ledger where money moves. Each is
idempotent: repeating a call that already took effect returns the current state and
posts nothing. These change local state only; provider_flows calls them with the
provider's answer.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django_fsm import can_proceed

from core.errors import ConcordError, Conflict
from core.sql import insert_unless_exists, update_fields
from core.transactions import joins_caller

from .._rows import charge_id_taken
from ..choices import LedgerAccountCode, LedgerTransactionKind, PaymentStatus
from ..dto import PaymentDTO
from ..events import PAYMENT_CAPTURED, PAYMENT_FAILED, payment_event_record
from ..models import Payment
from ._common import (
    SETTLED_CAPTURE_STATES,
    User,
    apply_transition,
    lock_payment,
    require_amount,
    require_currency,
    require_text,
)
from .ledger import ledger_post_at


def payment_create(*, order_id: int, amount: Decimal, currency: str, payment_method: str) -> PaymentDTO:
    """The one checkout payment of an order, created pending. Idempotent per order:
    a retry returns the same payment; different terms for the same order conflict.

    Called inside order_place's transaction (one commit per accepted order), so
    its block joins the caller's transaction without a savepoint (two round trips
    saved): the row is written with INSERT … ON CONFLICT (order_id) DO NOTHING
    (core.sql), which never raises for a concurrent insert, and every refusal is
    raised before or after that block, so it never leaves the caller's
    transaction marked for rollback."""
    if isinstance(order_id, bool) or not isinstance(order_id, int) or order_id <= 0:
        raise ConcordError("order_id must be a positive integer.", code="order_id_invalid")
    require_currency(currency)
    amount = require_amount(amount, currency)
    require_text(payment_method, field="payment_method", code="payment_method_invalid")
    payment = Payment(order_id=order_id, amount=amount, currency=currency, payment_method=payment_method)
    with transaction.atomic(savepoint=False):
        created = insert_unless_exists(payment, conflict=["order_id"])
        if not created:
            payment = Payment.objects.get(order_id=order_id)
    if not created and (payment.amount, payment.currency, payment.payment_method) != (
        amount,
        currency,
        payment_method,
    ):
        raise Conflict(
            f"Order {order_id} already has a payment with other terms.",
            code="payment_terms_mismatch",
            details={"order_id": order_id, "payment_id": payment.pk},
        )
    return PaymentDTO.from_model(payment)


@joins_caller
def payment_capture(*, payment_id: int, provider_charge_id: str, by: User = None, reason: str) -> PaymentDTO:
    """The provider captured the charge: pending|unknown -> captured, and the money
    enters the ledger (Dr provider_clearing / Cr customer_funds). The one place a
    payment becomes captured. Checks before it writes, so it joins a caller's
    transaction without a savepoint (core.transactions)."""
    require_text(provider_charge_id, field="provider_charge_id", code="provider_charge_id_invalid")
    payment = lock_payment(payment_id)
    refusal = capture_refusal(payment, provider_charge_id)
    if refusal is not None:
        raise refusal
    return capture_locked(payment, provider_charge_id=provider_charge_id, by=by, reason=reason)


def capture_refusal(payment: Payment, provider_charge_id: str) -> ConcordError | None:
    """Why `payment` (locked) cannot be captured by `provider_charge_id`; None when
    it can (or is already, by that charge: a repeat). Writes nothing, so a caller
    can ask before writing and keep its transaction usable."""
    if payment.status in SETTLED_CAPTURE_STATES:
        if payment.provider_charge_id != provider_charge_id:
            return Conflict(
                f"Payment {payment.pk} was captured by charge {payment.provider_charge_id}.",
                code="provider_charge_id_mismatch",
                details={"payment_id": payment.pk, "provider_charge_id": payment.provider_charge_id},
            )
        return None
    if not can_proceed(payment.capture):
        return Conflict(
            f"Payment {payment.pk} cannot capture from {payment.status}.",
            code="illegal_transition",
            details={"id": payment.pk, "status": payment.status, "transition": "capture"},
        )
    if charge_id_taken(provider_charge_id, payment.pk):
        return Conflict(
            f"Charge {provider_charge_id} already belongs to another payment.",
            code="provider_charge_id_taken",
            details={"provider_charge_id": provider_charge_id},
        )
    return None


def capture_locked(payment: Payment, *, provider_charge_id: str, by: User = None, reason: str) -> PaymentDTO:
    """payment_capture's writes, for a payment locked by the caller and checked with
    capture_refusal (in the caller's transaction)."""
    if payment.status in SETTLED_CAPTURE_STATES:
        return PaymentDTO.from_model(payment)  # already captured: no-op
    with transaction.atomic(savepoint=False):
        apply_transition(payment, "capture", provider_charge_id=provider_charge_id, by=by, description=reason)
        update_fields(payment, ["status", "provider_charge_id", "failure_code", "updated_at"])
        _, ledger_at = ledger_post_at(
            kind=LedgerTransactionKind.CAPTURE,
            currency=payment.currency,
            entries=[
                (LedgerAccountCode.PROVIDER_CLEARING, payment.amount),
                (LedgerAccountCode.CUSTOMER_FUNDS, -payment.amount),
            ],
            reference=f"payment:{payment.pk}:capture",
            payment_id=payment.pk,
            memo=f"Charge {provider_charge_id} for order {payment.order_id}",
        )
        payment_event_record(PAYMENT_CAPTURED, payment, ledger_at=ledger_at)
    return PaymentDTO.from_model(payment)


@transaction.atomic
def payment_fail(*, payment_id: int, failure_code: str, by: User = None, reason: str) -> PaymentDTO:
    """The provider declined (or a person established that no charge exists):
    pending|unknown -> failed. No money moved, so nothing is posted."""
    require_text(failure_code, field="failure_code", code="failure_code_invalid")
    payment = lock_payment(payment_id)
    if payment.status == PaymentStatus.FAILED:
        return PaymentDTO.from_model(payment)  # already failed: no-op, the first code stands
    apply_transition(payment, "fail", failure_code=failure_code, by=by, description=reason)
    payment.save()
    payment_event_record(PAYMENT_FAILED, payment)
    return PaymentDTO.from_model(payment)


@transaction.atomic
def payment_mark_unknown(*, payment_id: int, error: str, by: User = None, reason: str) -> PaymentDTO:
    """The provider did not answer: pending -> unknown. Resolved later by a retry with
    the same idempotency key or a lookup (then payment_capture / payment_fail)."""
    if not isinstance(error, str):
        raise ConcordError("error must be a string.", code="error_invalid")
    payment = lock_payment(payment_id)
    if payment.status == PaymentStatus.UNKNOWN:
        return PaymentDTO.from_model(payment)  # already unknown: no-op
    apply_transition(payment, "mark_unknown", error=error, by=by, description=reason)
    payment.save()
    return PaymentDTO.from_model(payment)


@transaction.atomic
def payment_mark_unknown_if_pending(*, payment_id: int, error: str) -> PaymentDTO:
    """An unanswered charge request: pending -> unknown; a payment settled meanwhile
    (a webhook, a lookup) stays as it is."""
    payment = lock_payment(payment_id)
    if payment.status != PaymentStatus.PENDING:
        return PaymentDTO.from_model(payment)
    return payment_mark_unknown(
        payment_id=payment_id, error=error, reason="the provider did not answer the charge request"
    )
