"""The incident page runs reconciliation's remediations: a dry-run preview (what
happens, money moved, stock changed), then apply with a reason, once."""

from decimal import Decimal

import pytest
from django.urls import reverse

from backoffice import services
from backoffice.models import ApprovalRequest, StaffAction
from core.errors import ConcordError
from payments.selectors import payment_for_order
from reconciliation.detectors import detector_get
from reconciliation.selectors import incident_get, incidents_list
from reconciliation.services import incident_dismiss, reconcile_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def duplicate(shop, settings):
    """A confirmed order that the customer's app paid twice (a retry with a new key):
    the duplicate_charge detector opens an incident about the extra charge."""
    settings.RECONCILIATION = {**settings.RECONCILIATION, "SETTLE_SECONDS": 0}
    order_id = shop.confirmed()
    kept = payment_for_order(order_id=order_id).provider_charge_id
    extra = shop.psp.client().create_charge(
        amount=6000, currency="EUR", payment_method="pm_card_ok", reference=str(order_id),
        idempotency_key="app-retry-with-a-new-key",
    ).charge  # fmt: skip
    reconcile_run(detectors=[detector_get("duplicate_charge")])
    [incident] = incidents_list(order_id=order_id, types=["duplicate_charge"])
    return incident.id, kept, extra.id


def _post(client, incident_id, **data):
    return client.post(
        reverse("backoffice:incident-action", args=[incident_id]), data, follow=True
    ).content.decode()


def refunds_at_provider(psp, charge_id):
    return psp.request("GET", "/v1/refunds", params={"charge": charge_id}).json()["data"]


def test_preview_then_apply_once(support, shop, duplicate):
    incident_id, kept, extra = duplicate
    page = support.get(reverse("backoffice:incident", args=[incident_id])).content.decode()
    assert 'Refund the extra charges</strong> <span class="badge">suggested' in page

    data = {
        "op": "remediate",
        "action": "refund_extra_charges",
        "reason": "charged twice",
        "action_key": "f1",
    }
    preview = _post(support, incident_id, **data)
    assert "<strong>60.00 EUR</strong> back to the customer" in preview
    assert f"Refund of charge {extra}: 60.00 EUR" in preview
    assert "Stock: unchanged." in preview
    assert refunds_at_provider(shop.psp, extra) == []  # the preview did nothing

    done = _post(support, incident_id, **data, confirm="1")
    again = _post(support, incident_id, **data, confirm="1")  # double click / resend

    assert "Refund the extra charges: succeeded, 60.00 EUR moved." in done
    assert "already submitted; nothing was done twice" in again
    assert [r["amount"] for r in refunds_at_provider(shop.psp, extra)] == [6000]
    assert refunds_at_provider(shop.psp, kept) == []  # the order's own charge is kept
    action = StaffAction.objects.get(key="f1")
    assert (action.user.username, action.reason, action.outcome) == (
        "sam",
        "charged twice",
        "succeeded, 60.00 EUR moved",
    )
    notes = [n.text for n in incident_get(incident_id=incident_id).notes]
    assert any("refund_extra_charges by sam: succeeded, 60.00 EUR moved" in n for n in notes)

    # A fresh form (new key): the preview says it is done, and forcing it moves nothing.
    preview = _post(support, incident_id, **{**data, "action_key": "f2"})
    assert "Not possible now: already applied." in preview
    forced = _post(support, incident_id, **{**data, "action_key": "f2"}, confirm="1")
    assert "it was applied before; nothing was done twice" in forced
    assert len(refunds_at_provider(shop.psp, extra)) == 1

    # The next pass re-checks: the condition is gone, the incident resolves.
    reconcile_run(detectors=[detector_get("duplicate_charge")])
    assert incident_get(incident_id=incident_id).state == "resolved"


def test_errors_are_messages_and_finance_cannot_remediate(support, support_user, finance, shop, duplicate):
    incident_id, _, extra = duplicate
    data = {"op": "remediate", "action": "refund_extra_charges", "reason": "x", "action_key": "e1"}

    assert finance.post(reverse("backoffice:incident-action", args=[incident_id]), data).status_code == 403
    wrong = _post(support, incident_id, **{**data, "action": "release_stock"})
    assert "does not apply to this incident" in wrong
    no_reason = _post(support, incident_id, **{**data, "reason": " "})
    assert "A reason is required." in no_reason

    incident_dismiss(incident_id=incident_id, by=support_user, reason="test")
    closed = _post(support, incident_id, **data, confirm="1")
    assert 'class="msg error"' in closed and "dismissed" in closed
    assert StaffAction.objects.get(key="e1").outcome.startswith("incident_closed")
    assert refunds_at_provider(shop.psp, extra) == []
    assert Decimal(incident_get(incident_id=incident_id).amount_at_risk) == Decimal("60.00")


def test_a_remediation_above_the_threshold_waits_for_finance_then_runs_once(
    support, finance, support_user, shop, duplicate, settings
):
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "50.00"
    incident_id, _, extra = duplicate
    data = {
        "op": "remediate",
        "action": "refund_extra_charges",
        "reason": "charged twice",
        "action_key": "g1",
    }

    preview = _post(support, incident_id, **data)
    assert "it waits for a second person from finance to approve" in preview
    asked = _post(support, incident_id, **data, confirm="1")
    assert "waits for finance approval (request #" in asked
    approval = ApprovalRequest.objects.get()
    assert (approval.kind, approval.incident_id, approval.amount) == (
        "remediation",
        incident_id,
        Decimal("60.00"),
    )
    assert refunds_at_provider(shop.psp, extra) == []  # nothing moves before the approval

    # The requester cannot approve; finance can, once.
    with pytest.raises(ConcordError) as err:
        services.approval_approve(approval_id=approval.pk, by=support_user, reason="me", action_key="x")
    assert err.value.code in ("permission_denied", "second_person_required")
    listing = finance.get(reverse("backoffice:approvals")).content.decode()
    assert "Approve remediation of 60.00 EUR" in listing
    decide = {"decision": "approve", "reason": "photos checked", "action_key": "a1"}
    url = reverse("backoffice:approval-decide", args=[approval.pk])
    first = finance.post(url, decide, follow=True).content.decode()
    second = finance.post(url, decide, follow=True).content.decode()

    assert "Approved: remediation refund_extra_charges succeeded, 60.00 EUR moved." in first
    assert "Approved" in second
    assert [r["amount"] for r in refunds_at_provider(shop.psp, extra)] == [6000]
    notes = [n.text for n in incident_get(incident_id=incident_id).notes]
    assert any("by sam: succeeded" in n and "approved by fay: photos checked" in n for n in notes)


def test_an_approval_binds_the_amount_approved_a_grown_plan_is_asked_again(
    support_user, finance_user, shop, duplicate, settings
):
    """Issue 13, item 3: approved for 60.00, then a pass refreshed the incident with a
    third charge; approving must not refund 130.00 on the strength of the 60.00 asked."""
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "50.00"
    incident_id, _, extra = duplicate
    asked = services.operation_submit(
        page="incident", subject_id=incident_id, op="remediate", data={"action": "refund_extra_charges"},
        by=support_user, reason="charged twice", action_key="bind-1",
    )  # fmt: skip
    first = ApprovalRequest.objects.get(pk=asked.approval_id)
    assert first.amount == Decimal("60.00")
    order_id = incident_get(incident_id=incident_id).order_id
    third = shop.psp.client().create_charge(
        amount=7000, currency="EUR", payment_method="pm_card_ok", reference=str(order_id),
        idempotency_key="app-retry-again",
    ).charge  # fmt: skip
    reconcile_run(detectors=[detector_get("duplicate_charge")])
    assert Decimal(incident_get(incident_id=incident_id).amount_at_risk) == Decimal("130.00")

    decided = services.approval_approve(
        approval_id=first.pk, by=finance_user, reason="checked", action_key="bind-a1"
    )

    assert decided.outcome.level == "warning" and "Asked again" in decided.outcome.message
    assert refunds_at_provider(shop.psp, extra) == refunds_at_provider(shop.psp, third.id) == []
    first.refresh_from_db()
    again = ApprovalRequest.objects.exclude(pk=first.pk).get()
    assert first.status == "rejected" and "plan grew" in first.decision_reason
    assert (again.status, again.amount, again.requested_by_id) == (
        "pending",
        Decimal("130.00"),
        support_user.pk,
    )

    services.approval_approve(approval_id=again.pk, by=finance_user, reason="both", action_key="bind-a2")

    assert [r["amount"] for r in refunds_at_provider(shop.psp, extra)] == [6000]
    assert [r["amount"] for r in refunds_at_provider(shop.psp, third.id)] == [7000]


def test_a_remediation_run_with_an_approved_ceiling_refuses_a_larger_plan(support_user, shop, duplicate):
    """The ceiling also holds inside reconciliation, for a pass that lands between the
    approval's check and the run."""
    from reconciliation.services import remediation_apply

    incident_id, _, extra = duplicate

    with pytest.raises(ConcordError) as refused:
        remediation_apply(
            incident_id=incident_id, by=support_user, reason="approved earlier", action="refund_extra_charges",
            max_amount=Decimal("50.00"),
        )  # fmt: skip

    assert refused.value.details["why_not"] == "plan_grew"
    assert refunds_at_provider(shop.psp, extra) == []
