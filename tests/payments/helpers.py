"""Reach a payment state through the services, as production does."""

from decimal import Decimal

from django_fsm_log.models import StateLog

from payments import services
from payments.choices import PaymentStatus
from payments.models import Payment

from .factories import PaymentFactory


def payment_in_state(status: str, amount: Decimal = Decimal("100.00")) -> Payment:
    payment = PaymentFactory(amount=amount)
    pid = payment.pk
    if status == PaymentStatus.PENDING:
        pass
    elif status == PaymentStatus.UNKNOWN:
        services.payment_mark_unknown(payment_id=pid, error="timeout", reason="setup")
    elif status == PaymentStatus.FAILED:
        services.payment_fail(payment_id=pid, failure_code="card_declined", reason="setup")
    else:
        services.payment_capture(payment_id=pid, provider_charge_id=f"ch_setup_{pid}", reason="setup")
        if status == PaymentStatus.PARTIALLY_REFUNDED:
            refund = services.refund_create(payment_id=pid, amount=Decimal("10.00"), reason="setup")
            services.refund_succeed(refund_id=refund.id, provider_refund_id=f"re_setup_{pid}", reason="setup")
        elif status == PaymentStatus.REFUNDED:
            refund = services.refund_create(payment_id=pid, amount=amount, reason="setup")
            services.refund_succeed(refund_id=refund.id, provider_refund_id=f"re_setup_{pid}", reason="setup")
    payment.refresh_from_db()
    assert payment.status == status
    return payment


def state_logs(obj) -> list[StateLog]:
    return list(StateLog.objects.for_(obj).order_by("id"))
