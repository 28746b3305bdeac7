"""The order JSON carries its payment state and refunds (GET, list, cancel)."""

from decimal import Decimal

import pytest

from payments import services as payments
from payments.selectors import payment_for_order
from tests.api_orders.conftest import ORDERS_URL, place

pytestmark = pytest.mark.django_db


def test_get_and_list_show_the_payment_and_its_refunds(catalog, shop):
    order_id = place(shop).json()["id"]
    payment = payment_for_order(order_id=order_id)
    payments.payment_capture(payment_id=payment.id, provider_charge_id="ch_json_1", reason="t")
    refund = payments.refund_create(payment_id=payment.id, amount=Decimal("5.00"), reason="t")
    payments.refund_succeed(refund_id=refund.id, provider_refund_id="re_json_1", reason="t")
    pending = payments.refund_create(payment_id=payment.id, amount=Decimal("1.50"), reason="t")

    body = shop.get(f"{ORDERS_URL}{order_id}/").json()
    assert body["payment"]["status"] == "partially_refunded"
    assert (body["payment"]["amount"], body["payment"]["refunded_amount"]) == ("45.00", "5.00")
    assert [(r["id"], r["amount"], r["status"]) for r in body["payment"]["refunds"]] == [
        (refund.id, "5.00", "succeeded"),
        (pending.id, "1.50", "pending"),
    ]
    listed = shop.get(ORDERS_URL).json()["results"]
    assert listed[0]["payment"] == body["payment"]
