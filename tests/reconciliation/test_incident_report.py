from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from django_fsm_log.models import StateLog

from reconciliation.models import Incident
from reconciliation.services import incident_dismiss, incident_report, incidents_report

pytestmark = pytest.mark.django_db


def _logs(incident_id):
    ct = ContentType.objects.get_for_model(Incident)
    return list(StateLog.objects.filter(content_type=ct, object_id=incident_id).order_by("id"))


def test_detecting_twice_keeps_one_incident_and_moves_last_seen(make_finding):
    first = timezone.now() - timedelta(minutes=5)
    (r1,) = incidents_report(findings=[make_finding("42", amount="10.00")], now=first)
    (r2,) = incidents_report(findings=[make_finding("42", amount="20.00")])

    assert r1.created is True
    assert r2.created is False
    assert r1.incident_id == r2.incident_id
    incident = Incident.objects.get()
    assert incident.detected_at == first
    assert incident.last_seen_at > first
    # The evidence is refreshed (a third charge raises the money at risk); identity is not.
    assert incident.amount_at_risk == Decimal("20.00")
    assert incident.state == "open"
    logs = _logs(incident.pk)
    assert [(log.transition, log.source_state, log.state) for log in logs] == [("detect", None, "open")]


def test_single_report_returns_id_and_created(make_finding):
    incident_id, created = incident_report(make_finding("7"))
    again_id, again_created = incident_report(make_finding("7"))
    assert (created, again_created) == (True, False)
    assert incident_id == again_id


def test_bulk_report_opens_each_fingerprint_once(make_finding):
    findings = [make_finding(str(i)) for i in range(120)] + [make_finding("3")]  # "3" twice in one batch
    reported = incidents_report(findings=findings)
    assert len(reported) == 120
    assert all(r.created for r in reported)
    assert Incident.objects.count() == 120
    again = incidents_report(findings=findings)
    assert not any(r.created for r in again)
    assert Incident.objects.count() == 120


def test_dismissed_fingerprint_is_not_reopened(make_finding, support_user):
    incident_id, _ = incident_report(make_finding("9"))
    incident_dismiss(incident_id=incident_id, by=support_user, reason="test order, not a real customer")
    before = Incident.objects.get(pk=incident_id).last_seen_at

    reported = incidents_report(findings=[make_finding("9")])

    assert reported == []
    assert Incident.objects.count() == 1
    dismissed = Incident.objects.get(pk=incident_id)
    assert dismissed.state == "dismissed"
    assert dismissed.last_seen_at > before


def test_a_resolved_condition_that_comes_back_is_a_new_incident(make_finding):
    from reconciliation.services import incidents_auto_resolve

    first_id, _ = incident_report(make_finding("5"))
    assert incidents_auto_resolve(incident_type="duplicate_charge", still_found=set()) == [first_id]

    second_id, created = incident_report(make_finding("5"))

    assert created is True
    assert second_id != first_id
    assert Incident.objects.get(pk=first_id).state == "resolved"
    assert Incident.objects.get(pk=second_id).state == "open"
