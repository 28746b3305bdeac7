"""The manual confirm of a pending order whose payment the provider captured: the case
file's action runs orders' one recipe (order_confirm_paid), so the stock leaves the
shelf too — before, only the order was confirmed and the reservation stayed held, which
reconciliation then reported as stock drift."""

from decimal import Decimal

import pytest
from django.urls import reverse

from backoffice.models import StaffAction
from inventory.selectors import reservations_for_order, stock_level_get
from orders.selectors import order_get
from payments.selectors import payment_for_order
from payments.services import payment_resolve_by_lookup
from reconciliation.services import reconcile_run
from sagas.selectors import saga_run_get
from tests.fixtures.books import assert_books_agree, reconcile_opens_nothing

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _reconcile_at_once(settings):
    settings.RECONCILIATION = {**settings.RECONCILIATION, "SETTLE_SECONDS": 0}


@pytest.fixture
def charged_but_stuck(shop, settings):
    """The provider charged, its answer was lost (timeout after commit) and the checkout
    gave up at charge_payment; the charge was found later (a lookup, as a webhook would):
    the order is pending, its stock held, its payment captured, its run failed."""
    settings.PSP_READ_TIMEOUT = 0.5
    shop.psp.set_faults(timeout_after_commit_rate=1.0, timeout_seconds=1)
    order_id = shop.order(quantity=2)
    assert shop.advance(order_id) == "failed"
    shop.provider_recovers()
    payment = payment_for_order(order_id=order_id)
    assert payment.status == "unknown"
    assert payment_resolve_by_lookup(payment_id=payment.id).status == "captured"
    return order_id


def _post(client, order_id, **data):
    return client.post(
        reverse("backoffice:order-action", args=[order_id]), data, follow=True
    ).content.decode()


def test_confirming_a_paid_order_commits_its_stock_and_the_books_agree(support, shop, charged_but_stuck):
    # given
    order_id = charged_but_stuck
    run_id = shop.run_id(order_id)
    before = stock_level_get(shop.SKU)
    assert {r.state for r in reservations_for_order(order_id)} == {"held"}
    reconcile_run()  # whatever the stuck checkout opened is on record before the action
    page = support.get(reverse("backoffice:order", args=[order_id])).content.decode()
    assert "Confirm the order manually" in page

    # when: the action is previewed, then confirmed
    data = {"op": "confirm", "reason": "charge found at the provider", "action_key": "c1"}
    preview = _post(support, order_id, **data)
    done = _post(support, order_id, **data, confirm="1")

    # then
    assert "Stock: 2 x BO-1 leave the shelf" in preview
    assert f"Saga #{run_id} (checkout, failed) is marked resolved." in preview
    assert f"Order {order_id} confirmed." in done
    assert order_get(order_id=order_id).status == "confirmed"
    assert {r.state for r in reservations_for_order(order_id)} == {"committed"}
    after = stock_level_get(shop.SKU)
    assert (after.on_hand, after.reserved) == (before.on_hand - 2, before.reserved - 2)
    assert saga_run_get(run_id=run_id).status == "resolved"  # off the stuck list
    payment = payment_for_order(order_id=order_id)
    assert (payment.status, payment.amount) == ("captured", Decimal("120.00"))
    assert_books_agree(shop.psp)
    run = reconcile_opens_nothing()
    assert run.auto_resolved >= 1  # the stuck checkout's incident closes by itself
    action = StaffAction.objects.get(key="c1")
    assert (action.action, action.user.username, action.reason) == (
        "order_confirm",
        "sam",
        "charge found at the provider",
    )


def test_confirm_is_not_offered_while_the_payment_is_not_captured(support, shop):
    order_id, _ = shop.failed_checkout()  # the provider never charged: payment pending

    page = support.get(reverse("backoffice:order", args=[order_id])).content.decode()
    forced = _post(support, order_id, op="confirm", reason="x", action_key="k", confirm="1")

    assert "Confirm the order manually" not in page
    assert "not possible for this order now" in forced
    assert order_get(order_id=order_id).status == "pending"
    assert {r.state for r in reservations_for_order(order_id)} == {"held"}
