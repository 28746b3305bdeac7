"""Staff cancel a confirmed order through the orders app: the cancellation saga
refunds at the provider, restocks and cancels; above the threshold finance approves first."""

from decimal import Decimal

import pytest
from django.urls import reverse

from backoffice.models import ApprovalRequest
from inventory.selectors import stock_level_get
from orders.sagas import ORDER_CANCELLATION
from orders.selectors import order_get
from payments.selectors import payment_for_order
from sagas.executor import advance_run
from sagas.selectors import saga_run_for_subject

pytestmark = pytest.mark.django_db


def _post(client, order_id, **data):
    return client.post(
        reverse("backoffice:order-action", args=[order_id]), data, follow=True
    ).content.decode()


def _finish_cancellation(order_id: int) -> None:
    run = saga_run_for_subject(saga_type=ORDER_CANCELLATION, subject_id=str(order_id))
    advance_run(run.id, worker_id="test")  # what the worker does when the poke arrives


def test_cancel_a_confirmed_order_refunds_restocks_and_cancels(support, shop, settings):
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "100.00"
    order_id = shop.confirmed(quantity=1)
    on_hand = stock_level_get(shop.SKU).on_hand
    data = {"op": "cancel", "reason": "customer withdrew", "action_key": "c1"}

    preview = _post(support, order_id, **data)
    assert "Money: 60.00 EUR back to the customer (full refund)." in preview
    assert "Stock: 1 x BO-1 back on the shelf." in preview
    assert order_get(order_id=order_id).status == "confirmed"  # the preview changed nothing

    done = _post(support, order_id, **data, confirm="1")
    again = _post(support, order_id, **data, confirm="1")
    assert f"Order {order_id} is being cancelled" in done
    assert "not possible for this order now" in again or "already submitted" in again
    assert order_get(order_id=order_id).status == "cancelling"

    _finish_cancellation(order_id)
    order = order_get(order_id=order_id)
    payment = payment_for_order(order_id=order_id)
    assert (order.status, order.failure_reason) == ("cancelled", "cancelled_by_staff")
    assert (payment.status, payment.refunded_amount) == ("refunded", Decimal("60.00"))
    refunds = shop.psp.request("GET", "/v1/refunds", params={"charge": payment.provider_charge_id}).json()
    assert [r["amount"] for r in refunds["data"]] == [6000]
    assert stock_level_get(shop.SKU).on_hand == on_hand + 1


def test_a_large_cancellation_waits_for_finance(support, finance, shop, settings):
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "50.00"
    order_id = shop.confirmed()
    data = {"op": "cancel", "reason": "fraud suspected", "action_key": "c2"}

    assert "waits for a second person from finance" in _post(support, order_id, **data)
    assert "waits for finance approval" in _post(support, order_id, **data, confirm="1")
    assert order_get(order_id=order_id).status == "confirmed"
    approval = ApprovalRequest.objects.get()
    assert (approval.kind, approval.amount) == ("cancel", Decimal("60.00"))

    decide = {"decision": "approve", "reason": "confirmed with the bank", "action_key": "a1"}
    page = finance.post(reverse("backoffice:approval-decide", args=[approval.pk]), decide, follow=True)
    assert "the order is being cancelled" in page.content.decode()
    _finish_cancellation(order_id)
    assert order_get(order_id=order_id).status == "cancelled"
    assert payment_for_order(order_id=order_id).status == "refunded"
