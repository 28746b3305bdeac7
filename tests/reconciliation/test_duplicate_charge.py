"""duplicate_charge end to end: real sandbox charges, a reconcile pass, incidents."""

from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django_fsm_log.models import StateLog

from reconciliation.detectors import DetectionContext, detector_get
from reconciliation.models import Incident, ReconciliationRun
from reconciliation.services import reconcile_run

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _charge(client, reference, key, amount=2500):
    return client.create_charge(
        amount=amount, currency="EUR", payment_method="pm_card_ok", reference=reference, idempotency_key=key
    ).charge


def test_two_captures_for_one_order_open_one_incident_until_one_is_refunded(psp):
    client = psp.client()
    first = _charge(client, "42", "order-42:attempt-1")
    second = _charge(client, "42", "order-42:attempt-2")  # a retry with a new key: charged twice
    _charge(client, "43", "order-43:attempt-1")  # another order, charged once

    run1 = reconcile_run()

    assert (run1.opened, run1.auto_resolved) == (1, 0)
    incident = Incident.objects.get()
    assert (incident.type, incident.state, incident.severity) == ("duplicate_charge", "open", "high")
    assert incident.order_id == 42
    assert incident.charge_id == second.id
    assert (incident.amount_at_risk, incident.currency) == (Decimal("25.00"), "EUR")
    assert incident.details["kept_charge_id"] == first.id
    assert incident.details["extra_charge_ids"] == [second.id]

    # when the pass runs again, nothing new
    run2 = reconcile_run()
    assert (run2.opened, run2.auto_resolved) == (0, 0)
    assert Incident.objects.count() == 1

    # when the extra charge is refunded at the provider, the next pass resolves the incident
    client.create_refund(charge_id=second.id, amount=2500, idempotency_key="refund-42-extra")
    run3 = reconcile_run()

    assert (run3.opened, run3.auto_resolved) == (0, 1)
    incident = Incident.objects.get(pk=incident.pk)
    assert (incident.state, incident.resolution_kind, incident.resolved_by) == ("resolved", "auto", None)
    log = StateLog.objects.filter(
        content_type=ContentType.objects.get_for_model(Incident), object_id=incident.pk, transition="resolve"
    ).get()
    assert (log.source_state, log.state, log.by) == ("open", "resolved", None)
    assert "no longer finds" in log.description
    runs = list(ReconciliationRun.objects.order_by("id").values_list("status", "opened", "auto_resolved"))
    assert runs == [("succeeded", 1, 0), ("succeeded", 0, 0), ("succeeded", 0, 1)]


def test_a_partial_refund_still_leaves_a_duplicate(psp):
    client = psp.client()
    _charge(client, "50", "k-50-a")
    extra = _charge(client, "50", "k-50-b")
    client.create_refund(charge_id=extra.id, amount=1000, idempotency_key="r-50")

    reconcile_run()

    incident = Incident.objects.get()
    assert incident.amount_at_risk == Decimal("15.00")


def test_the_detector_ignores_failed_and_fully_refunded_charges(provider_charge, provider_refund):
    provider_charge("60")
    provider_charge("60", status="failed")
    provider_charge("61")
    provider_charge("61", refunded_minor=2500)  # refunded per the charge's own total
    provider_charge("62")
    provider_refund(provider_charge("62"))  # refunded per a synced refund
    provider_charge("63")
    provider_charge("63")

    findings = list(detector_get("duplicate_charge").find(DetectionContext.full()))

    assert [f.fingerprint for f in findings] == ["duplicate_charge:63"]
    assert findings[0].amount_at_risk == Decimal("25.00")
