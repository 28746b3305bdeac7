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


def test_two_captures_for_one_order_open_one_incident_until_one_is_refunded(psp, shop):
    client = psp.client()
    order_id, first_id = shop.checkout(client)
    # a retry with a new key: charged twice
    second = _charge(client, str(order_id), f"order-{order_id}:attempt-2")
    shop.checkout(client)  # another order, charged once

    run1 = reconcile_run(detectors=[detector_get("duplicate_charge")])

    assert (run1.opened, run1.auto_resolved) == (1, 0)
    incident = Incident.objects.get()
    assert (incident.type, incident.state, incident.severity) == ("duplicate_charge", "open", "high")
    assert incident.order_id == order_id
    assert incident.charge_id == second.id
    assert (incident.amount_at_risk, incident.currency) == (Decimal("25.00"), "EUR")
    assert incident.details["kept_charge_id"] == first_id
    assert incident.details["kept_because"] == "recorded_by_payments"
    assert incident.details["extra_charge_ids"] == [second.id]

    # when the pass runs again, nothing new
    run2 = reconcile_run(detectors=[detector_get("duplicate_charge")])
    assert (run2.opened, run2.auto_resolved) == (0, 0)
    assert Incident.objects.count() == 1

    # when the extra charge is refunded at the provider, the next pass resolves the incident
    client.create_refund(charge_id=second.id, amount=2500, idempotency_key="refund-extra")
    run3 = reconcile_run(detectors=[detector_get("duplicate_charge")])

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


def test_the_charge_payments_recorded_is_kept_even_when_it_came_second(psp, shop):
    client = psp.client()
    order_id = shop.order()
    early = _charge(client, str(order_id), "stray-first")  # e.g. a charge from an older attempt
    order_id, recorded_id = order_id, None
    from inventory.services import stock_commit
    from orders.services import order_confirm
    from payments.services import payment_capture

    shop.reserve(order_id)
    payment = shop.payment(order_id)
    recorded_id = _charge(client, str(order_id), payment.charge_idempotency_key).id
    payment_capture(payment_id=payment.id, provider_charge_id=recorded_id, reason="charged")
    stock_commit(order_id=order_id, reason="confirmed")
    order_confirm(order_id=order_id, reason="done")

    reconcile_run(detectors=[detector_get("duplicate_charge")])

    incident = Incident.objects.get()
    assert incident.details["kept_charge_id"] == recorded_id
    assert incident.details["extra_charge_ids"] == [early.id]
    assert incident.charge_id == early.id


def test_a_partial_refund_still_leaves_a_duplicate(psp, shop):
    client = psp.client()
    order_id, _ = shop.checkout(client)
    extra = _charge(client, str(order_id), "k-50-b")
    client.create_refund(charge_id=extra.id, amount=1000, idempotency_key="r-50")

    reconcile_run(detectors=[detector_get("duplicate_charge")])

    incident = Incident.objects.get(type="duplicate_charge")
    assert incident.amount_at_risk == Decimal("15.00")


def test_the_detector_ignores_failed_and_fully_refunded_charges(shop, provider_charge, provider_refund):
    a, b, c, d, _orphan = (str(shop.order()) for _ in range(5))
    provider_charge(a)
    provider_charge(a, status="failed")
    provider_charge(b)
    provider_charge(b, refunded_minor=2500)  # refunded per the charge's own total
    provider_charge(c)
    provider_refund(provider_charge(c))  # refunded per a synced refund
    provider_charge(d)
    provider_charge(d)
    provider_charge("999999")  # no such order: charge_without_order's, not a duplicate
    provider_charge("999999")

    findings = list(detector_get("duplicate_charge").find(DetectionContext.full()))

    assert [f.fingerprint for f in findings] == [f"duplicate_charge:{d}"]
    assert findings[0].amount_at_risk == Decimal("25.00")
