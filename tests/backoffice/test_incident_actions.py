"""Incident queue and actions from the back office."""

import pytest
from django.urls import reverse

from reconciliation.selectors import incident_get

pytestmark = pytest.mark.django_db


def _act(client, incident_id, **data):
    return client.post(
        reverse("backoffice:incident-action", args=[incident_id]), data, follow=True
    ).content.decode()


def test_queue_filters(support, make_incident):
    big = make_incident(amount="500.00", severity="critical")
    small = make_incident(amount="5.00", severity="low")
    page = support.get(reverse("backoffice:incidents") + "?severity=critical").content.decode()
    assert f">#{big}<" in page and f">#{small}<" not in page
    page = support.get(reverse("backoffice:incidents") + "?min_amount=10").content.decode()
    assert f">#{big}<" in page and f">#{small}<" not in page
    page = support.get(reverse("backoffice:incidents") + "?min_amount=abc").content.decode()
    assert "is not an amount" in page


def test_assign_acknowledge_note_and_dismiss(support, make_incident):
    incident_id = make_incident()
    _act(support, incident_id, op="assign_me", action_key="k1")
    _act(support, incident_id, op="acknowledge", reason="looking", action_key="k2")
    _act(support, incident_id, op="note", reason="called the provider", action_key="k3")
    preview = _act(support, incident_id, op="dismiss", reason="test charge", action_key="k4")
    assert "false positive" in preview
    assert incident_get(incident_id=incident_id).state == "acknowledged"
    _act(support, incident_id, op="dismiss", reason="test charge", action_key="k4", confirm="1")

    incident = incident_get(incident_id=incident_id)
    assert incident.state == "dismissed" and incident.resolution_reason == "test charge"
    assert [n.text for n in incident.notes] == ["Assigned to sam.", "called the provider"]
    assert [(a.transition, a.by_username) for a in incident.audit][-2:] == [
        ("acknowledge", "sam"),
        ("dismiss", "sam"),
    ]
    mine = support.get(reverse("backoffice:incidents") + "?mine=1&state=dismissed").content.decode()
    assert f">#{incident_id}<" in mine


def test_resolve_without_a_reachable_provider_is_a_message(support, make_incident, settings):
    settings.PSP_BASE_URL = "http://127.0.0.1:9"  # nothing listens there
    incident_id = make_incident(order_id=77)
    page = _act(support, incident_id, op="resolve", reason="refunded", action_key="k1", confirm="1")
    assert "fix cannot be verified" in page
    assert incident_get(incident_id=incident_id).state == "open"


def test_finance_cannot_act_on_incidents(finance, make_incident):
    incident_id = make_incident()
    response = finance.post(
        reverse("backoffice:incident-action", args=[incident_id]), {"op": "acknowledge", "reason": "x"}
    )
    assert response.status_code == 403


def test_dismissing_an_incident_with_money_at_risk_above_the_threshold_needs_finance(
    settings, support, support_user, finance_user, make_incident
):
    """Issue 13, item 6: a false-positive dismissal closes the incident and nobody looks at
    that money again — above the threshold, like a refund, a second person from finance."""
    from backoffice import services
    from backoffice.models import ApprovalRequest
    from core.errors import ConcordError

    settings.BACKOFFICE_APPROVAL_THRESHOLD = "100.00"
    small, big = make_incident(amount="40.00"), make_incident(amount="500.00")

    preview = _act(support, big, op="dismiss", reason="looks like a test charge", action_key="d1")
    assert "500.00 EUR" in preview and "waits for a second person from finance" in preview
    page = _act(support, big, op="dismiss", reason="looks like a test charge", action_key="d1", confirm="1")
    assert "waits for finance approval" in page
    assert incident_get(incident_id=big).state == "open"
    approval = ApprovalRequest.objects.get(incident_id=big)
    assert (approval.kind, approval.amount) == ("dismissal", 500)
    with pytest.raises(ConcordError):  # not by the person who asked
        services.approval_approve(approval_id=approval.pk, by=support_user, reason="me", action_key="d2")

    services.approval_approve(approval_id=approval.pk, by=finance_user, reason="verified", action_key="d3")

    assert incident_get(incident_id=big).state == "dismissed"
    # Under the threshold, support dismisses at once.
    _act(support, small, op="dismiss", reason="test charge", action_key="d4", confirm="1")
    assert incident_get(incident_id=small).state == "dismissed"
