"""The two-person rule cannot be split (issue 13, item 2): the threshold counts what was
already refunded or asked for the order, and what one person moved today."""

from decimal import Decimal

import pytest

from backoffice import services
from backoffice.models import ApprovalRequest
from payments.selectors import payment_for_order, refunds_for_payment

from .conftest import new_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "250.00"
    settings.BACKOFFICE_APPROVAL_DAILY_LIMIT = "100000.00"


def _submit(user, order_id, op, **data):
    return services.operation_submit(
        page="order", subject_id=order_id, op=op, data=data, by=user, reason="customer asked",
        action_key=new_key(),
    )  # fmt: skip


def test_ten_refunds_of_100_need_approval_once_they_add_up(support_user, shop):
    order_id = shop.confirmed(quantity=20)  # 1,200.00 EUR
    outcomes = [_submit(support_user, order_id, "refund", amount="100.00") for _ in range(10)]

    ran = [s for s in outcomes if s.approval_id is None]
    waiting = [s for s in outcomes if s.approval_id is not None]
    # 100 + 100 = 200 ran; the third would make 300 > 250, and so would every later one.
    assert len(ran) == 2 and len(waiting) == 8
    payment = payment_for_order(order_id=order_id)
    assert sum(r.amount for r in refunds_for_payment(payment_id=payment.id)) == Decimal("200.00")
    assert ApprovalRequest.objects.filter(order_id=order_id, status="pending").count() == 8


def test_partial_refunds_then_a_cancel_needs_approval(support_user, shop):
    order_id = shop.confirmed(quantity=5)  # 300.00 EUR
    assert _submit(support_user, order_id, "refund", amount="100.00").approval_id is None
    assert _submit(support_user, order_id, "refund", amount="100.00").approval_id is None

    cancel = _submit(support_user, order_id, "cancel")

    # The cancel itself moves only the last 100.00, but the order's total is 300.00.
    assert cancel.approval_id is not None
    approval = ApprovalRequest.objects.get(pk=cancel.approval_id)
    assert (approval.kind, approval.amount) == ("cancel", Decimal("100.00"))


def test_the_preview_says_why_it_waits(support_user, shop):
    order_id = shop.confirmed(quantity=5)
    _submit(support_user, order_id, "refund", amount="200.00")

    proposed = services.operation_preview(
        page="order", subject_id=order_id, op="refund", data={"amount": "60.00"}, by=support_user, reason="x"
    )

    assert proposed.needs_approval
    assert "200.00 EUR already refunded or asked for this order" in proposed.approval_reason


def test_a_person_splitting_across_orders_meets_the_daily_limit(settings, support_user, support_user2, shop):
    settings.BACKOFFICE_APPROVAL_DAILY_LIMIT = "150.00"
    orders = [shop.confirmed(quantity=2) for _ in range(3)]  # 120.00 each

    first = _submit(support_user, orders[0], "refund", amount="60.00")
    second = _submit(support_user, orders[1], "refund", amount="60.00")
    third = _submit(support_user, orders[2], "refund", amount="60.00")  # 180 > 150 today
    someone_else = _submit(support_user2, orders[2], "refund", amount="60.00")

    assert (first.approval_id, second.approval_id) == (None, None)
    assert third.approval_id is not None
    assert (
        "daily limit"
        in services.operation_preview(
            page="order",
            subject_id=orders[2],
            op="refund",
            data={"amount": "40.00"},
            by=support_user,
            reason="x",
        ).approval_reason
    )
    # The limit is per person.
    assert someone_else.approval_id is None


def test_what_finance_approved_does_not_count_against_the_requesters_daily_limit(
    settings, support_user, finance_user, shop
):
    settings.BACKOFFICE_APPROVAL_DAILY_LIMIT = "100.00"
    big, small = shop.confirmed(quantity=5), shop.confirmed(quantity=1)
    waiting = _submit(support_user, big, "refund", amount="300.00")
    services.approval_approve(
        approval_id=waiting.approval_id, by=finance_user, reason="ok", action_key=new_key()
    )

    assert _submit(support_user, small, "refund", amount="60.00").approval_id is None


@pytest.mark.django_db(transaction=True)
def test_two_refunds_sent_at_once_cannot_both_stay_under_the_rule(support_user, support_user2, shop):
    """Each decision waits for the other's (per order): one runs, the other sees it."""
    from tests.fixtures.concurrency import at_once, raised

    order_id = shop.confirmed(quantity=5)  # 300.00; threshold 250.00
    people = [support_user, support_user2]

    outcomes = at_once(2, lambda i: _submit(people[i], order_id, "refund", amount="150.00"))

    assert raised(outcomes) == []
    assert sorted(o.approval_id is None for o in outcomes) == [False, True]
