"""Each service run twice has one effect: one row, one audit row, one ledger posting."""

from decimal import Decimal

import pytest

from core.errors import Conflict
from payments import services
from payments.choices import PaymentStatus
from payments.models import LedgerTransaction, Payment, Refund
from tests.fixtures.concurrency import at_once, raised

from .helpers import payment_in_state, state_logs

pytestmark = pytest.mark.django_db


def _effects(obj):
    return (len(state_logs(obj)), LedgerTransaction.objects.count())


def test_payment_create_twice_is_one_payment():
    kwargs = {"order_id": 42, "amount": Decimal("25.00"), "currency": "EUR", "payment_method": "pm_card_ok"}

    first = services.payment_create(**kwargs)
    second = services.payment_create(**kwargs)

    assert first == second
    assert Payment.objects.count() == 1


def test_payment_create_with_other_terms_for_the_same_order_conflicts():
    services.payment_create(order_id=42, amount=Decimal("25.00"), currency="EUR", payment_method="pm_card_ok")

    with pytest.raises(Conflict) as excinfo:
        services.payment_create(
            order_id=42, amount=Decimal("26.00"), currency="EUR", payment_method="pm_card_ok"
        )

    assert excinfo.value.code == "payment_terms_mismatch"


def test_capture_twice_posts_once():
    payment = payment_in_state(PaymentStatus.PENDING)
    services.payment_capture(payment_id=payment.pk, provider_charge_id="ch_1", reason="first")
    before = _effects(payment)

    again = services.payment_capture(payment_id=payment.pk, provider_charge_id="ch_1", reason="retry")

    assert again.status == PaymentStatus.CAPTURED
    assert _effects(payment) == before
    assert payment.ledger_transactions.count() == 1


def test_capture_replayed_after_a_refund_is_still_a_no_op():
    payment = payment_in_state(PaymentStatus.PARTIALLY_REFUNDED)
    before = _effects(payment)

    dto = services.payment_capture(
        payment_id=payment.pk, provider_charge_id=payment.provider_charge_id, reason="late webhook"
    )

    assert dto.status == PaymentStatus.PARTIALLY_REFUNDED
    assert _effects(payment) == before


@pytest.mark.parametrize(
    ("setup_state", "call"),
    [
        (
            PaymentStatus.FAILED,
            lambda pid: services.payment_fail(payment_id=pid, failure_code="x", reason="r"),
        ),
        (
            PaymentStatus.UNKNOWN,
            lambda pid: services.payment_mark_unknown(payment_id=pid, error="e", reason="r"),
        ),
    ],
)
def test_fail_and_mark_unknown_twice_are_no_ops(setup_state, call):
    payment = payment_in_state(setup_state)
    before = _effects(payment)

    dto = call(payment.pk)

    assert dto.status == setup_state
    assert _effects(payment) == before


def test_refund_succeed_twice_posts_once():
    payment = payment_in_state(PaymentStatus.CAPTURED, amount=Decimal("40.00"))
    refund = services.refund_create(payment_id=payment.pk, amount=Decimal("10.00"), reason="r")
    services.refund_succeed(refund_id=refund.id, provider_refund_id="re_1", reason="ok")
    refund_row = Refund.objects.get(pk=refund.id)
    before = (_effects(payment), len(state_logs(refund_row)))

    services.refund_succeed(refund_id=refund.id, provider_refund_id="re_1", reason="webhook replay")

    assert (_effects(payment), len(state_logs(refund_row))) == before
    payment.refresh_from_db()
    assert payment.refunded_amount == Decimal("10.00")


def test_refund_fail_twice_is_a_no_op():
    payment = payment_in_state(PaymentStatus.CAPTURED)
    refund = services.refund_create(payment_id=payment.pk, amount=Decimal("10.00"), reason="r")
    services.refund_fail(refund_id=refund.id, failure_code="x", reason="no")
    refund_row = Refund.objects.get(pk=refund.id)
    before = len(state_logs(refund_row))

    services.refund_fail(refund_id=refund.id, failure_code="x", reason="again")

    assert len(state_logs(refund_row)) == before


def test_refund_create_with_a_key_twice_is_one_refund():
    payment = payment_in_state(PaymentStatus.CAPTURED)

    first = services.refund_create(
        payment_id=payment.pk, amount=Decimal("10.00"), reason="saga", idempotency_key="run7:refund_payment"
    )
    second = services.refund_create(
        payment_id=payment.pk, amount=Decimal("10.00"), reason="saga", idempotency_key="run7:refund_payment"
    )

    assert first == second
    assert payment.refunds.count() == 1
    with pytest.raises(Conflict) as excinfo:
        services.refund_create(
            payment_id=payment.pk,
            amount=Decimal("11.00"),
            reason="saga",
            idempotency_key="run7:refund_payment",
        )
    assert excinfo.value.code == "idempotency_key_reused"


@pytest.mark.django_db(transaction=True)
def test_concurrent_payment_create_for_one_order_makes_one_payment():
    kwargs = {"order_id": 77, "amount": Decimal("25.00"), "currency": "EUR", "payment_method": "pm_card_ok"}

    results = at_once(3, lambda i: services.payment_create(**kwargs))

    assert raised(results) == []
    assert len({dto.id for dto in results}) == 1
    assert Payment.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_captures_post_once():
    payment = payment_in_state(PaymentStatus.PENDING)

    results = at_once(
        2, lambda i: services.payment_capture(payment_id=payment.pk, provider_charge_id="ch_c", reason="race")
    )

    assert raised(results) == []
    assert payment.ledger_transactions.count() == 1
    assert len([log for log in state_logs(payment) if log.transition == "capture"]) == 1
