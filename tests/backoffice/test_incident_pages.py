"""Incident pages explain themselves (backoffice.runbooks): what the detector saw in
plain words, its description, a runbook per type; and assignment to any support person
(the incident_assign operation), with a forged or unfit assignee refused clearly."""

from __future__ import annotations

import html

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from backoffice.models import StaffAction
from backoffice.roles import api_client_create, staff_create
from backoffice.runbooks import RUNBOOKS
from reconciliation.selectors import detector_descriptions, incident_get, incident_kinds
from reconciliation.services.remediation import ACTIONS

from .conftest import duplicate_charge_found

pytestmark = pytest.mark.django_db


def test_every_detector_has_a_runbook_that_names_its_fixes():
    kinds = [name for name, _ in incident_kinds()]
    assert kinds, "no detectors registered"
    missing = [name for name in kinds if name not in RUNBOOKS]
    assert not missing, f"detectors without a runbook in backoffice/runbooks.py: {missing}"
    assert all(detector_descriptions()[name] for name in kinds), "every detector describes itself"
    for name in kinds:
        book = RUNBOOKS[name]
        assert book.check, f"{name}: nothing to check"
        explained = {action for action, _ in book.fixes}
        assert set(ACTIONS.get(name, ())) <= explained, f"{name}: a remediation is not explained"
        assert {"resolve", "dismiss"} <= explained


@pytest.mark.parametrize("kind", sorted(RUNBOOKS))
def test_a_runbook_reads_incomplete_details_without_failing(kind, make_incident, support):
    incident_id = make_incident(type=kind)  # details hold only a reference
    page = support.get(reverse("backoffice:incident", args=[incident_id])).content.decode()
    assert (
        page.count('id="explained"') == 1
        and "None" not in page.split('id="explained"')[1].split("</section>")[0]
    )


@pytest.fixture
def duplicate(shop, settings):
    """A real duplicate charge found by its detector (the customer's app paid twice)."""
    return duplicate_charge_found(shop, settings)


def test_the_page_says_what_the_detector_saw_and_what_to_do(support, duplicate):
    incident_id, order_id, kept, extra = duplicate
    page = html.unescape(support.get(reverse("backoffice:incident", args=[incident_id])).content.decode())
    explained = page.split('id="explained"', 1)[1].split("</section>", 1)[0]
    assert (
        f"Order {order_id} was captured 2 times at the provider. Concord keeps {kept} "
        f"(the one payments recorded); extra: {extra} — 60.00 EUR taken twice." in explained
    )
    assert "More than one net capture at the provider for one order." in explained  # the detector's own
    assert "Which one does Concord's payment record" in explained
    assert "<dt>Refund the extra charges</dt><dd>Refunds every capture except the kept one" in explained


def _assign(client, incident_id, assignee, key="a1", reason=""):
    return html.unescape(
        client.post(
            reverse("backoffice:incident-action", args=[incident_id]),
            {"op": "assign", "assignee_id": assignee, "reason": reason, "action_key": key},
            follow=True,
        ).content.decode()
    )


def test_support_assigns_an_incident_to_a_colleague(support, support_user, support_user2, make_incident):
    incident_id = make_incident()
    page = support.get(reverse("backoffice:incident", args=[incident_id])).content.decode()
    assert f'<option value="{support_user2.pk}" >sue</option>' in page

    page = _assign(support, incident_id, support_user2.pk, reason="sue knows this provider")
    assert "Assigned to sue." in page
    incident = incident_get(incident_id=incident_id)
    assert incident.assigned_to_id == support_user2.pk
    assert incident.notes[-1].text == "Assigned to sue." and incident.notes[-1].author_username == "sam"
    action = StaffAction.objects.get(action="incident_assign")
    assert (action.user_id, action.reason, action.outcome) == (
        support_user.pk, "sue knows this provider", f"assigned to sue (#{support_user2.pk})",
    )  # fmt: skip
    assert f"assignee_id {support_user2.pk}" in action.target

    # A double submit of the same form changes nothing.
    assert "already submitted" in _assign(support, incident_id, support_user.pk)
    assert incident_get(incident_id=incident_id).assigned_to_id == support_user2.pk


def test_a_forged_or_unfit_assignee_gets_a_clear_error(support, make_incident, finance_user):
    incident_id = make_incident()
    inactive = staff_create(username="gone", role="support", password="gone-pass-1")
    inactive.is_active = False
    inactive.save()
    api_client_create(name="shop-app")
    api_client = User.objects.get(username="shop-app")
    for n, (assignee, says) in enumerate(
        [
            (999_999, "User #999999 is not an active support person"),
            (finance_user.pk, f"User #{finance_user.pk} is not an active support person"),
            (inactive.pk, f"User #{inactive.pk} is not an active support person"),
            (api_client.pk, f"User #{api_client.pk} is not an active support person"),
            ("", "Choose the support person to assign."),
            ("1 OR 1=1", "Choose the support person to assign."),
        ]
    ):
        page = _assign(support, incident_id, assignee, key=f"bad-{n}")
        assert f"Assign to: {says}" in page, page[-3000:]
    assert incident_get(incident_id=incident_id).assigned_to_id is None
    assert not StaffAction.objects.filter(action="incident_assign").exists()  # refused: nothing recorded


def test_finance_may_not_assign_and_a_closed_incident_is_not_offered(
    finance, support, support_user, make_incident
):
    incident_id = make_incident()
    response = finance.post(
        reverse("backoffice:incident-action", args=[incident_id]),
        {"op": "assign", "assignee_id": support_user.pk, "reason": "x", "action_key": "f1"},
    )
    assert response.status_code == 403
    support.post(
        reverse("backoffice:incident-action", args=[incident_id]),
        {"op": "dismiss", "reason": "test", "action_key": "d1", "confirm": "1"},
    )
    page = _assign(support, incident_id, support_user.pk, key="late")
    assert "That action is not possible for this incident now." in page
    assert incident_get(incident_id=incident_id).assigned_to_id is None


def test_the_operations_doc_lists_every_runbook():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    section = doc.split("## Incident runbooks", 1)[1].split("\n## ", 1)[0]
    assert [kind for kind in RUNBOOKS if f"| `{kind}` |" not in section] == []
