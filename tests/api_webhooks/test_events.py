"""What events do: resolve an unknown or pending payment once, whatever the deliveries."""

import logging

import pytest

from payments.models import ProviderWebhookEvent
from payments.selectors import payment_for_order
from payments.services import payment_capture, payment_mark_unknown
from tests.api_webhooks.conftest import charge_event, deliver
from tests.fixtures.concurrency import at_once, raised

pytestmark = pytest.mark.django_db


def _unknown(order):
    payment = payment_for_order(order_id=order.id)
    payment_mark_unknown(payment_id=payment.id, error="read timeout", reason="provider did not answer")
    return payment


def test_charge_succeeded_resolves_an_unknown_payment(placed_order):
    payment = _unknown(placed_order)
    event = charge_event(reference=str(placed_order.id), amount=2500)

    response = deliver(event)

    assert response.status_code == 200
    assert response.json() == {
        "received": True,
        "event_id": event["id"],
        "duplicate": False,
        "outcome": "applied",
    }
    resolved = payment_for_order(order_id=placed_order.id)
    assert resolved.id == payment.id
    assert resolved.status == "captured"
    assert resolved.provider_charge_id == event["data"]["object"]["id"]
    row = ProviderWebhookEvent.objects.get(event_id=event["id"])
    assert row.processed_at is not None and row.outcome == "applied" and row.event_type == "charge.succeeded"
    assert row.payload == event


def test_charge_failed_resolves_a_pending_payment(placed_order):
    response = deliver(charge_event(event_type="charge.failed", reference=str(placed_order.id)))

    assert response.status_code == 200
    payment = payment_for_order(order_id=placed_order.id)
    assert payment.status == "failed"
    assert payment.failure_code == "card_declined"


def test_the_same_event_twice_is_processed_once(placed_order):
    _unknown(placed_order)
    event = charge_event(reference=str(placed_order.id))

    first, second = deliver(event), deliver(event)

    assert first.status_code == second.status_code == 200
    assert first.json()["duplicate"] is False
    assert second.json() == {
        "received": True,
        "event_id": event["id"],
        "duplicate": True,
        "outcome": "duplicate",
    }
    row = ProviderWebhookEvent.objects.get(event_id=event["id"])
    assert row.deliveries == 2
    assert ProviderWebhookEvent.objects.count() == 1
    # Captured once: one ledger posting, one capture audit row.
    from django_fsm_log.models import StateLog

    captures = StateLog.objects.filter(
        transition="capture", object_id=payment_for_order(order_id=placed_order.id).id
    )
    assert captures.count() == 1


def test_an_event_for_a_settled_payment_changes_nothing(placed_order):
    payment = payment_for_order(order_id=placed_order.id)
    payment_capture(payment_id=payment.id, provider_charge_id="ch_first", reason="charge answered")

    response = deliver(charge_event(event_type="charge.failed", reference=str(placed_order.id)))

    assert response.status_code == 200
    assert payment_for_order(order_id=placed_order.id).status == "captured"


def test_an_event_with_no_matching_payment_is_acknowledged(db):
    response = deliver(charge_event(reference="999999"))

    assert response.status_code == 200
    assert response.json()["outcome"] == "no_payment"


def test_an_unknown_event_type_is_acknowledged_and_logged(db, caplog):
    event = charge_event(event_type="payout.paid")

    with caplog.at_level(logging.INFO, logger="payments.services.webhooks"):
        response = deliver(event)

    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored"
    assert any(event["id"] in r.getMessage() and "payout.paid" in r.getMessage() for r in caplog.records)
    assert ProviderWebhookEvent.objects.get(event_id=event["id"]).outcome == "ignored"


def test_a_charge_event_without_a_charge_is_recorded_as_rejected(db):
    event = charge_event()
    event["data"]["object"] = "ch_1"

    response = deliver(event)

    assert response.status_code == 200
    assert response.json()["outcome"] == "rejected"


def test_a_malformed_charge_is_recorded_as_rejected(placed_order):
    event = charge_event(reference=str(placed_order.id), amount="lots")

    response = deliver(event)

    assert response.status_code == 200
    assert response.json()["outcome"] == "rejected"
    assert payment_for_order(order_id=placed_order.id).status == "pending"


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_event_apply_it_once(placed_order):
    _unknown(placed_order)
    event = charge_event(reference=str(placed_order.id))
    n = 5

    responses = at_once(n, lambda i: deliver(event))

    assert raised(responses) == []
    assert [r.status_code for r in responses] == [200] * n
    assert sorted(r.json()["duplicate"] for r in responses) == [False] + [True] * (n - 1)
    assert ProviderWebhookEvent.objects.get(event_id=event["id"]).deliveries == n
    assert payment_for_order(order_id=placed_order.id).status == "captured"
