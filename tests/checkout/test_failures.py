"""Permanent failures compensate: nothing stays charged or held."""

from decimal import Decimal

import pytest

from inventory.selectors import reservations_for_order, stock_level_get
from orders.selectors import order_get
from payments.selectors import payment_for_order, provider_attempts_for_payment
from sagas.selectors import saga_step_log

from .conftest import advance, assert_invariants, clearing_balance, provider_charges, run_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_declined_card_compensates_releases_stock_and_cancels_as_payment_declined(psp, shop, place):
    order_id = place(lines=[("MUG", 2)], payment_method="pm_card_declined")

    assert advance(order_id) == "compensated"

    order = order_get(order_id=order_id)
    assert (order.status, order.failure_reason) == ("cancelled", "payment_declined")
    assert {r.state for r in reservations_for_order(order_id)} == {"released"}
    assert (stock_level_get("MUG").on_hand, stock_level_get("MUG").reserved) == (5, 0)
    payment = payment_for_order(order_id=order_id)
    assert (payment.status, payment.failure_code) == ("failed", "card_declined")
    assert [c["status"] for c in provider_charges(psp, order_id)] == ["failed"]
    assert clearing_balance() == Decimal("0")
    # The declined step is not compensated (a permanent failure promises no effect).
    steps = [(s.step, s.direction, s.outcome) for s in saga_step_log(run_id=run_of(order_id).id)]
    assert steps == [
        ("reserve_stock", "forward", "done"),
        ("charge_payment", "forward", "fail"),
        ("reserve_stock", "compensate", "done"),
    ]
    assert_invariants(psp, [order_id], shop)


def test_insufficient_funds_is_a_decline_too(psp, shop, place):
    order_id = place(lines=[("TEE", 1)], payment_method="pm_card_insufficient_funds")
    assert advance(order_id) == "compensated"
    assert order_get(order_id=order_id).failure_reason == "payment_declined"


def test_a_permanent_refusal_that_is_not_a_card_decline_is_payment_failed(psp, shop, place):
    # The sandbox refuses unknown payment methods with a 400: permanent, not the card's fault.
    order_id = place(lines=[("TEE", 1)], payment_method="pm_card_unknown")
    assert advance(order_id) == "compensated"
    order = order_get(order_id=order_id)
    assert (order.status, order.failure_reason) == ("cancelled", "payment_failed")
    assert stock_level_get("TEE").reserved == 0


def test_out_of_stock_cancels_without_charging(psp, shop, place):
    order_id = place(lines=[("MUG", 1), ("TEE", 6)])

    assert advance(order_id) == "compensated"

    order = order_get(order_id=order_id)
    assert (order.status, order.failure_reason) == ("cancelled", "out_of_stock")
    assert reservations_for_order(order_id) == []  # all or nothing: MUG was not held either
    assert stock_level_get("MUG").reserved == 0
    payment = payment_for_order(order_id=order_id)
    assert (payment.status, payment.failure_code) == ("failed", "not_charged")  # never asked
    assert provider_attempts_for_payment(payment_id=payment.id) == []
    assert provider_charges(psp, order_id) == []
    assert_invariants(psp, [order_id], shop)
