"""People's actions on an incident: audited, reasoned, idempotent."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django_fsm_log.models import StateLog

from reconciliation.errors import ActionNotPermitted, IncidentClosed, IncidentNotFound, ReasonRequired
from reconciliation.models import Incident, IncidentNote
from reconciliation.selectors import incident_get
from reconciliation.services import (
    incident_acknowledge,
    incident_add_note,
    incident_assign,
    incident_dismiss,
    incident_report,
)

pytestmark = pytest.mark.django_db


def _transitions(incident_id):
    ct = ContentType.objects.get_for_model(Incident)
    return list(
        StateLog.objects.filter(content_type=ct, object_id=incident_id)
        .order_by("id")
        .values_list("transition", "source_state", "state", "by__username", "description")
    )


def test_acknowledge_records_who_when_and_why_once(make_finding, support_user):
    incident_id, _ = incident_report(make_finding())

    view = incident_acknowledge(
        incident_id=incident_id, by=support_user, reason="looking at the provider dashboard"
    )
    again = incident_acknowledge(incident_id=incident_id, by=support_user, reason="clicked twice")

    assert view.state == again.state == "acknowledged"
    incident = Incident.objects.get(pk=incident_id)
    assert incident.acknowledged_by == support_user
    assert incident.acknowledged_at is not None
    assert _transitions(incident_id)[1:] == [
        ("acknowledge", "open", "acknowledged", "sam-support", "looking at the provider dashboard")
    ]


def test_dismiss_needs_a_reason(make_finding, support_user):
    incident_id, _ = incident_report(make_finding())
    for reason in ("", "   ", None):
        with pytest.raises(ReasonRequired):
            incident_dismiss(incident_id=incident_id, by=support_user, reason=reason)
    assert Incident.objects.get(pk=incident_id).state == "open"


def test_dismiss_closes_with_kind_and_audit_and_is_idempotent(make_finding, support_user):
    incident_id, _ = incident_report(make_finding())

    incident_dismiss(incident_id=incident_id, by=support_user, reason="sandbox test card")
    incident_dismiss(incident_id=incident_id, by=support_user, reason="again")

    incident = Incident.objects.get(pk=incident_id)
    assert (incident.state, incident.resolution_kind, incident.resolved_by) == (
        "dismissed",
        "dismissed",
        support_user,
    )
    assert incident.resolution_reason == "sandbox test card"
    assert _transitions(incident_id)[1:] == [
        ("dismiss", "open", "dismissed", "sam-support", "sandbox test card")
    ]


def test_a_closed_incident_cannot_be_acknowledged_or_assigned(make_finding, support_user):
    incident_id, _ = incident_report(make_finding())
    incident_dismiss(incident_id=incident_id, by=support_user, reason="false positive")
    with pytest.raises(IncidentClosed):
        incident_acknowledge(incident_id=incident_id, by=support_user, reason="late")
    with pytest.raises(IncidentClosed):
        incident_assign(incident_id=incident_id, assignee_id=support_user.pk, by=support_user)


def test_assign_and_unassign_leave_notes(make_finding, support_user, superuser):
    incident_id, _ = incident_report(make_finding())

    incident_assign(incident_id=incident_id, assignee_id=support_user.pk, by=superuser)
    incident_assign(incident_id=incident_id, assignee_id=support_user.pk, by=superuser)  # no-op
    incident_assign(incident_id=incident_id, assignee_id=None, by=superuser)

    assert Incident.objects.get(pk=incident_id).assigned_to is None
    assert list(IncidentNote.objects.values_list("text", "author__username")) == [
        ("Assigned to sam-support.", "root"),
        ("Unassigned.", "root"),
    ]


def test_assign_only_to_active_staff(make_finding, support_user, django_user_model):
    incident_id, _ = incident_report(make_finding())
    customer = django_user_model.objects.create_user(username="shop", password="pw-shop-1")
    with pytest.raises(ActionNotPermitted):
        incident_assign(incident_id=incident_id, assignee_id=customer.pk, by=support_user)
    with pytest.raises(ActionNotPermitted):
        incident_assign(incident_id=incident_id, assignee_id=10**9, by=support_user)


def test_notes_are_kept_in_order_with_their_author(make_finding, support_user):
    incident_id, _ = incident_report(make_finding())
    incident_add_note(incident_id=incident_id, by=support_user, text="Customer emailed.")
    incident_add_note(incident_id=incident_id, by=support_user, text="Refund promised.")
    with pytest.raises(ReasonRequired):
        incident_add_note(incident_id=incident_id, by=support_user, text=" ")

    record = incident_get(incident_id=incident_id)

    assert [(n.author_username, n.text) for n in record.notes] == [
        ("sam-support", "Customer emailed."),
        ("sam-support", "Refund promised."),
    ]
    assert [a.transition for a in record.audit] == ["detect"]


def test_unknown_incident_is_a_clear_error(support_user):
    with pytest.raises(IncidentNotFound):
        incident_acknowledge(incident_id=123456, by=support_user, reason="x")
