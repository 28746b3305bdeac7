"""What every payments service shares: input checks, row locks in one order, and the
one way a transition is applied. Private to payments.services."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django_fsm import can_proceed

from core.errors import ConcordError, Conflict, NotFound
from core.money import is_supported_currency, quantize
from core.sql import in_open_transaction

from .._rows import payment_row
from ..choices import PaymentStatus
from ..models import Payment, Refund

if TYPE_CHECKING:
    # The person acting (settings.AUTH_USER_MODEL), or None for the system.
    from django.contrib.auth.models import User as AuthUser

    User = AuthUser | None
else:
    User = Any

MAX_KEY_LENGTH = 255
SETTLED_CAPTURE_STATES = frozenset(
    {PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}
)
REFUNDABLE_STATES = frozenset({PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED})
UNSETTLED_STATES = frozenset({PaymentStatus.PENDING, PaymentStatus.UNKNOWN})


def require_currency(currency: str) -> None:
    if not isinstance(currency, str) or not is_supported_currency(currency):
        raise ConcordError(
            f"Unsupported currency {currency!r}.", code="currency_unsupported", details={"currency": currency}
        )


def require_amount(amount: Decimal | int, currency: str, *, field: str = "amount") -> Decimal:
    """A positive Decimal with no more precision than the currency allows."""
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise ConcordError(f"{field} must be a Decimal.", code="amount_invalid", details={"field": field})
    amount = Decimal(amount)
    try:
        exact = amount.is_finite() and quantize(amount, currency) == amount
    except InvalidOperation:
        exact = False
    if not exact:
        raise ConcordError(
            f"{field} {amount} is not a valid {currency} amount.",
            code="amount_invalid",
            details={"field": field, "amount": str(amount)},
        )
    if amount <= 0:
        raise ConcordError(
            f"{field} must be positive.",
            code="amount_invalid",
            details={"field": field, "amount": str(amount)},
        )
    return amount


def require_text(value: str, *, field: str, code: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_KEY_LENGTH:
        raise ConcordError(
            f"{field} must be a non-empty string of at most {MAX_KEY_LENGTH} characters.",
            code=code,
            details={"field": field},
        )
    return value


def payment_not_found(payment_id: int) -> NotFound:
    return NotFound(
        f"Payment {payment_id} does not exist.",
        code="payment_not_found",
        details={"payment_id": payment_id},
    )


def get_payment(payment_id: int) -> Payment:
    payment = payment_row("id", payment_id)
    if payment is None:
        raise payment_not_found(payment_id)
    return payment


def get_refund(refund_id: int) -> Refund:
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None:
        raise NotFound(
            f"Refund {refund_id} does not exist.", code="refund_not_found", details={"refund_id": refund_id}
        )
    return refund


def lock_payment(payment_id: int) -> Payment:
    payment = payment_row("id", payment_id, lock=True)
    if payment is None:
        raise payment_not_found(payment_id)
    return payment


def lock_refund_and_payment(refund_id: int) -> tuple[Refund, Payment]:
    """Lock order: payment first, then refund — the same order refund_create uses,
    so concurrent refund services cannot deadlock."""
    payment_id = Refund.objects.filter(pk=refund_id).values_list("payment_id", flat=True).first()
    if payment_id is None:
        raise NotFound(
            f"Refund {refund_id} does not exist.", code="refund_not_found", details={"refund_id": refund_id}
        )
    payment = lock_payment(payment_id)
    refund = Refund.objects.select_for_update().get(pk=refund_id)
    return refund, payment


def apply_transition(obj: Payment | Refund, name: str, **kwargs: Any) -> None:
    """Apply a transition or raise Conflict("illegal_transition") — a business error
    the API and staff pages can show, instead of django-fsm's TransitionNotAllowed."""
    method = getattr(obj, name)
    if not can_proceed(method):
        raise Conflict(
            f"{type(obj).__name__} {obj.pk} cannot {name.replace('_', ' ')} from {obj.status}.",
            code="illegal_transition",
            details={"id": obj.pk, "status": obj.status, "transition": name},
        )
    method(**kwargs)


def refuse_open_transaction(service: str) -> None:
    """Provider calls run outside any transaction (core.sql.in_open_transaction)."""
    if in_open_transaction():
        raise ConcordError(
            f"{service} calls the payment provider and must not run inside a database transaction.",
            code="provider_call_in_transaction",
            http_status=500,
        )
