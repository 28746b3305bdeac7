"""Refunds never exceed what was captured: checked under the payment's row lock,
with pending refunds counted, and backed by a CHECK constraint on the payment."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from core.errors import ConcordError
from payments import selectors, services
from payments.choices import LedgerAccountCode, PaymentStatus, RefundStatus
from payments.models import Payment, Refund
from tests.fixtures.concurrency import at_once, raised

from .helpers import payment_in_state


@pytest.mark.django_db
def test_refund_above_captured_is_rejected():
    payment = payment_in_state(PaymentStatus.CAPTURED, amount=Decimal("20.00"))

    with pytest.raises(ConcordError) as excinfo:
        services.refund_create(payment_id=payment.pk, amount=Decimal("20.01"), reason="too much")

    assert excinfo.value.code == "refund_exceeds_captured"
    assert excinfo.value.details["refundable"] == "20.00"
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_pending_refunds_count_against_the_remainder():
    payment = payment_in_state(PaymentStatus.CAPTURED, amount=Decimal("20.00"))
    services.refund_create(payment_id=payment.pk, amount=Decimal("15.00"), reason="pending")

    with pytest.raises(ConcordError) as excinfo:
        services.refund_create(payment_id=payment.pk, amount=Decimal("5.01"), reason="over")

    assert excinfo.value.code == "refund_exceeds_captured"
    services.refund_create(payment_id=payment.pk, amount=Decimal("5.00"), reason="exactly the rest")


@pytest.mark.django_db
def test_partial_refunds_add_up_to_the_captured_amount():
    payment = payment_in_state(PaymentStatus.CAPTURED, amount=Decimal("10.00"))

    for i, amount in enumerate([Decimal("3.33"), Decimal("3.33"), Decimal("3.34")]):
        refund = services.refund_create(payment_id=payment.pk, amount=amount, reason=f"part {i}")
        services.refund_succeed(refund_id=refund.id, provider_refund_id=f"re_{i}", reason="ok")

    dto = selectors.payment_get(payment_id=payment.pk)
    assert (dto.status, dto.refunded_amount, dto.refundable_amount) == (
        PaymentStatus.REFUNDED,
        Decimal("10.00"),
        Decimal("0.00"),
    )
    with pytest.raises(ConcordError):
        services.refund_create(payment_id=payment.pk, amount=Decimal("0.01"), reason="nothing left")


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-1.00"), Decimal("1.005"), 1.5, "1.00"])
def test_refund_amount_must_be_a_positive_currency_amount(amount):
    payment = payment_in_state(PaymentStatus.CAPTURED)

    with pytest.raises(ConcordError) as excinfo:
        services.refund_create(payment_id=payment.pk, amount=amount, reason="bad")

    assert excinfo.value.code == "amount_invalid"


@pytest.mark.django_db
def test_database_refuses_refunded_above_amount():
    payment = payment_in_state(PaymentStatus.CAPTURED, amount=Decimal("10.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(refunded_amount=Decimal("10.01"))


@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_never_exceed_the_captured_amount():
    # given: 100.00 captured
    payment = payment_in_state(PaymentStatus.CAPTURED, amount=Decimal("100.00"))

    def refund_and_settle(n):
        refund = services.refund_create(payment_id=payment.pk, amount=Decimal("30.00"), reason=f"t{n}")
        return services.refund_succeed(refund_id=refund.id, provider_refund_id=f"re_t{n}", reason="ok")

    # when: five connections each refund 30.00 at once
    results = at_once(5, refund_and_settle)

    # then: exactly three fit; the others are refused with a clear code
    refused = raised(results)
    succeeded = [r for r in results if not isinstance(r, BaseException)]
    assert len(succeeded) == 3
    assert all(isinstance(e, ConcordError) and e.code == "refund_exceeds_captured" for e in refused)
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("90.00")
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert Refund.objects.filter(status=RefundStatus.SUCCEEDED).count() == 3
    assert selectors.ledger_account_balance(
        code=LedgerAccountCode.PROVIDER_CLEARING, currency="EUR"
    ) == Decimal("10.00")
    assert selectors.ledger_unbalanced_transactions() == []
