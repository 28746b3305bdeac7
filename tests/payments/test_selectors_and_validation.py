"""Selectors return DTOs; bad input to services is a clear ConcordError."""

from decimal import Decimal

import pytest

from core.errors import ConcordError, NotFound
from payments import selectors, services
from payments.choices import PaymentStatus

from .helpers import payment_in_state

pytestmark = pytest.mark.django_db


def test_payment_for_order_and_payment_get():
    dto = services.payment_create(
        order_id=5, amount=Decimal("9.99"), currency="USD", payment_method="pm_card_ok"
    )

    assert selectors.payment_for_order(order_id=5) == dto
    assert selectors.payment_get(payment_id=dto.id) == dto
    assert selectors.payment_for_order(order_id=6) is None
    assert (dto.status, dto.refunded_amount, dto.provider_charge_id) == (PaymentStatus.PENDING, 0, None)


def test_unknown_ids_are_not_found():
    with pytest.raises(NotFound):
        selectors.payment_get(payment_id=123_456)
    with pytest.raises(NotFound):
        selectors.refund_get(refund_id=123_456)
    with pytest.raises(NotFound) as excinfo:
        services.payment_capture(payment_id=123_456, provider_charge_id="ch", reason="r")
    assert excinfo.value.code == "payment_not_found"
    with pytest.raises(NotFound) as excinfo:
        services.refund_succeed(refund_id=123_456, provider_refund_id="re", reason="r")
    assert excinfo.value.code == "refund_not_found"


def test_refunds_for_payment_oldest_first():
    payment = payment_in_state(PaymentStatus.CAPTURED)
    a = services.refund_create(payment_id=payment.pk, amount=Decimal("1.00"), reason="a")
    b = services.refund_create(payment_id=payment.pk, amount=Decimal("2.00"), reason="b")

    assert [r.id for r in selectors.refunds_for_payment(payment_id=payment.pk)] == [a.id, b.id]
    assert selectors.refund_get(refund_id=b.id) == b


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"order_id": 0}, "order_id_invalid"),
        ({"order_id": "7"}, "order_id_invalid"),
        ({"currency": "XXX"}, "currency_unsupported"),
        ({"amount": Decimal("0.00")}, "amount_invalid"),
        ({"amount": Decimal("10.5"), "currency": "JPY"}, "amount_invalid"),
        ({"amount": 10.0}, "amount_invalid"),
        ({"payment_method": ""}, "payment_method_invalid"),
    ],
)
def test_payment_create_validates(overrides, code):
    kwargs = {"order_id": 7, "amount": Decimal("10.00"), "currency": "EUR", "payment_method": "pm_card_ok"}

    with pytest.raises(ConcordError) as excinfo:
        services.payment_create(**(kwargs | overrides))

    assert excinfo.value.code == code


def test_capture_needs_a_charge_id():
    payment = payment_in_state(PaymentStatus.PENDING)
    with pytest.raises(ConcordError) as excinfo:
        services.payment_capture(payment_id=payment.pk, provider_charge_id="", reason="r")
    assert excinfo.value.code == "provider_charge_id_invalid"
