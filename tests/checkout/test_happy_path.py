from decimal import Decimal

import pytest

from inventory.selectors import reservations_for_order, stock_level_get
from orders.selectors import order_get
from payments.selectors import payment_for_order, provider_attempts_for_payment

from .conftest import advance, assert_invariants, clearing_balance, provider_charges, run_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_happy_checkout_confirms_commits_stock_captures_and_posts_the_ledger(psp, shop, place):
    order_id = place(lines=[("MUG", 2), ("TEE", 1)])

    assert advance(order_id) == "completed"

    order = order_get(order_id=order_id)
    assert (order.status, order.failure_reason, order.total) == ("confirmed", None, Decimal("45.00"))
    assert {r.state for r in reservations_for_order(order_id)} == {"committed"}
    assert (stock_level_get("MUG").on_hand, stock_level_get("MUG").reserved) == (3, 0)
    payment = payment_for_order(order_id=order_id)
    assert payment.status == "captured"
    charges = provider_charges(psp, order_id)
    assert [(c["id"], c["amount"], c["status"]) for c in charges] == [
        (payment.provider_charge_id, 4500, "succeeded")
    ]
    attempts = provider_attempts_for_payment(payment_id=payment.id)
    assert [(a.kind, a.outcome, a.idempotency_key) for a in attempts] == [
        ("charge", "succeeded", payment.charge_idempotency_key)
    ]
    assert clearing_balance() == Decimal("45.00")
    assert run_of(order_id).context["provider_charge_id"] == payment.provider_charge_id
    assert_invariants(psp, [order_id], shop)


def test_advancing_a_completed_checkout_again_changes_nothing(psp, shop, place):
    order_id = place(lines=[("MUG", 1)])
    assert advance(order_id) == "completed"

    assert advance(order_id) == "not_claimed"

    assert len(provider_charges(psp, order_id)) == 1
    assert clearing_balance() == Decimal("12.50")
