"""Refunds from the case file; above BACKOFFICE_APPROVAL_THRESHOLD a second person from finance approves."""

from decimal import Decimal

import pytest
from django.urls import reverse

from backoffice import services
from backoffice.models import ApprovalRequest
from core.errors import ConcordError
from payments.selectors import payment_for_order, refunds_for_payment

from .conftest import login, new_key

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _threshold(settings):
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "50.00"


def _refund(client, order_id, amount, key, confirm=True):
    data = {"op": "refund", "amount": amount, "reason": "damaged in transit", "action_key": key}
    if confirm:
        data["confirm"] = "1"
    return client.post(
        reverse("backoffice:order-action", args=[order_id]), data, follow=True
    ).content.decode()


def test_a_small_refund_happens_at_once(support, shop):
    order_id = shop.confirmed()
    preview = _refund(support, order_id, "20.00", "r1", confirm=False)
    assert "20.00 EUR back to the customer (partial refund" in preview

    _refund(support, order_id, "20.00", "r1")
    _refund(support, order_id, "20.00", "r1")  # double submit

    [refund] = refunds_for_payment(payment_id=payment_for_order(order_id=order_id).id)
    assert (refund.amount, refund.status) == (Decimal("20.00"), "pending")
    assert not ApprovalRequest.objects.exists()


def test_a_large_refund_waits_for_finance_then_runs_once(support, finance, shop):
    order_id = shop.confirmed()
    payment_id = payment_for_order(order_id=order_id).id

    preview = _refund(support, order_id, "60.00", "r2", confirm=False)
    assert "waits for a second person from finance" in preview
    page = _refund(support, order_id, "60.00", "r2")
    assert "waits for finance approval" in page
    assert refunds_for_payment(payment_id=payment_id) == []
    approval = ApprovalRequest.objects.get()

    listing = finance.get(reverse("backoffice:approvals")).content.decode()
    assert "Approve refund of 60.00 EUR" in listing
    data = {"decision": "approve", "reason": "checked the photos", "action_key": "a1"}
    finance.post(reverse("backoffice:approval-decide", args=[approval.pk]), data)
    finance.post(reverse("backoffice:approval-decide", args=[approval.pk]), data)  # double click

    approval.refresh_from_db()
    [refund] = refunds_for_payment(payment_id=payment_id)
    assert (approval.status, approval.refund_id, approval.decided_by.username) == (
        "approved",
        refund.id,
        "fay",
    )
    assert refund.amount == Decimal("60.00")


def test_nobody_approves_their_own_request(superuser, shop):
    order_id = shop.confirmed()
    outcome = services.operation_submit(
        page="order",
        subject_id=order_id,
        op="refund",
        data={"amount": "60.00"},
        reason="x",
        by=superuser,
        action_key=new_key(),
    )
    with pytest.raises(ConcordError) as err:
        services.approval_approve(
            approval_id=outcome.approval_id, by=superuser, reason="ok", action_key=new_key()
        )
    assert err.value.code == "second_person_required"
    page = login(superuser).post(
        reverse("backoffice:approval-decide", args=[outcome.approval_id]),
        {"decision": "approve", "reason": "ok", "action_key": "k"},
        follow=True,
    )
    assert "A second person must approve" in page.content.decode()


def test_support_cannot_approve_and_a_rejection_moves_no_money(
    support_user, support_user2, finance_user, shop
):
    order_id = shop.confirmed()
    outcome = services.operation_submit(
        page="order",
        subject_id=order_id,
        op="refund",
        data={"amount": "55.00"},
        reason="x",
        by=support_user,
        action_key=new_key(),
    )
    with pytest.raises(ConcordError) as err:
        services.approval_approve(
            approval_id=outcome.approval_id, by=support_user2, reason="ok", action_key=new_key()
        )
    assert err.value.code == "permission_denied"

    services.approval_reject(
        approval_id=outcome.approval_id, by=finance_user, reason="not justified", action_key=new_key()
    )
    with pytest.raises(ConcordError) as err:
        services.approval_approve(
            approval_id=outcome.approval_id, by=finance_user, reason="ok", action_key=new_key()
        )
    assert err.value.code == "approval_closed"
    assert refunds_for_payment(payment_id=payment_for_order(order_id=order_id).id) == []


def test_bad_amounts_are_messages_not_errors(support, shop):
    order_id = shop.confirmed()
    for amount in ["abc", "-1", "0", "1.234", "999.00"]:
        page = _refund(support, order_id, amount, f"bad-{amount}", confirm=False)
        assert 'class="msg error"' in page, amount


def _next_id(model):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [model._meta.db_table])
        (sequence,) = cursor.fetchone()
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")
        last, called = cursor.fetchone()
    return last + 1 if called else last


def test_a_staff_chosen_form_key_cannot_pre_empt_an_approvals_refund(support, finance, shop):
    """Form keys and approval keys live in separate namespaces (issue 13, item 4): a
    small refund submitted with the form key "approval:<id>" used to take the refund key
    the approval <id> would use, so approving it found that refund and moved nothing more."""
    order_id = shop.confirmed(quantity=2)
    payment_id = payment_for_order(order_id=order_id).id
    next_approval = _next_id(ApprovalRequest)
    _refund(support, order_id, "10.00", f"approval:{next_approval}")
    _refund(support, order_id, "60.00", "big-one")
    approval = ApprovalRequest.objects.get()
    assert approval.pk == next_approval

    data = {"decision": "approve", "reason": "checked", "action_key": new_key()}
    finance.post(reverse("backoffice:approval-decide", args=[approval.pk]), data)

    refunds = refunds_for_payment(payment_id=payment_id)
    assert sorted(r.amount for r in refunds) == [Decimal("10.00"), Decimal("60.00")]
    assert len({r.idempotency_key for r in refunds}) == 2
