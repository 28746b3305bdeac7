"""The small frozen dataclasses other apps receive instead of model instances."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .models import Payment, ProviderAttempt, Refund


@dataclass(frozen=True)
class PaymentDTO:
    id: int
    order_id: int
    amount: Decimal
    currency: str
    payment_method: str
    status: str
    provider_charge_id: str | None
    failure_code: str
    last_error: str
    refunded_amount: Decimal
    charge_idempotency_key: str
    created_at: datetime
    updated_at: datetime

    @property
    def refundable_amount(self) -> Decimal:
        """Captured minus already refunded (pending refunds not subtracted)."""
        return self.amount - self.refunded_amount

    @classmethod
    def from_model(cls, payment: Payment) -> PaymentDTO:
        return cls(
            id=payment.pk,
            order_id=payment.order_id,
            amount=payment.amount,
            currency=payment.currency,
            payment_method=payment.payment_method,
            status=payment.status,
            provider_charge_id=payment.provider_charge_id,
            failure_code=payment.failure_code,
            last_error=payment.last_error,
            refunded_amount=payment.refunded_amount,
            charge_idempotency_key=payment.charge_idempotency_key,
            created_at=payment.created_at,
            updated_at=payment.updated_at,
        )


@dataclass(frozen=True)
class RefundDTO:
    id: int
    payment_id: int
    amount: Decimal
    currency: str
    status: str
    provider_refund_id: str | None
    idempotency_key: str
    reason: str
    failure_code: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, refund: Refund) -> RefundDTO:
        return cls(
            id=refund.pk,
            payment_id=refund.payment_id,
            amount=refund.amount,
            currency=refund.currency,
            status=refund.status,
            provider_refund_id=refund.provider_refund_id,
            idempotency_key=refund.idempotency_key,
            reason=refund.reason,
            failure_code=refund.failure_code,
            created_at=refund.created_at,
            updated_at=refund.updated_at,
        )


@dataclass(frozen=True)
class ProviderAttemptDTO:
    id: int
    payment_id: int | None
    refund_id: int | None
    charge_id: str
    kind: str
    idempotency_key: str
    outcome: str
    provider_object_id: str
    http_status: int | None
    error: str
    duration_ms: int | None
    created_at: datetime
    attempt_id: str = ""

    @classmethod
    def from_model(cls, attempt: ProviderAttempt) -> ProviderAttemptDTO:
        return cls(
            id=attempt.pk,
            payment_id=attempt.payment_id,
            refund_id=attempt.refund_id,
            charge_id=attempt.charge_id,
            kind=attempt.kind,
            idempotency_key=attempt.idempotency_key,
            outcome=attempt.outcome,
            provider_object_id=attempt.provider_object_id,
            http_status=attempt.http_status,
            error=attempt.error,
            duration_ms=attempt.duration_ms,
            attempt_id=attempt.attempt_id,
            created_at=attempt.created_at,
        )
