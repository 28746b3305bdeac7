"""What events do: a hint to look at the provider's own records, recorded once per event id.

These tests run against the sandbox provider (a real process): an event settles a
payment only as far as the provider's records, asked through the provider client, say.
"""

import logging

import pytest

from orders.selectors import order_get
from payments.models import LedgerTransaction, ProviderWebhookEvent
from payments.selectors import payment_for_order, provider_attempts_for_payment
from payments.services import payment_capture, payment_mark_unknown
from tests.api_webhooks.conftest import charge_event, deliver, event_about, provider_charge
from tests.fixtures.concurrency import at_once, raised

pytestmark = pytest.mark.django_db


def _unknown(order):
    payment = payment_for_order(order_id=order.id)
    payment_mark_unknown(payment_id=payment.id, error="read timeout", reason="provider did not answer")
    return payment


def _captures(payment_id):
    return LedgerTransaction.objects.filter(payment_id=payment_id, kind="capture").count()


def test_charge_succeeded_resolves_an_unknown_payment_from_the_providers_record(psp, placed_order):
    payment = _unknown(placed_order)
    charge = provider_charge(psp, placed_order)
    event = event_about(charge, event_type="charge.succeeded")

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
    assert (resolved.status, resolved.provider_charge_id) == ("captured", charge["id"])
    row = ProviderWebhookEvent.objects.get(event_id=event["id"])
    assert row.processed_at is not None and row.outcome == "applied" and row.event_type == "charge.succeeded"
    assert row.payload == event
    # The provider was asked: the lookup is on the payment's timeline.
    assert [a.kind for a in provider_attempts_for_payment(payment_id=payment.id)] == ["lookup"]


def test_charge_failed_resolves_a_pending_payment_from_the_providers_record(psp, placed_order):
    charge = provider_charge(psp, placed_order, payment_method="pm_card_declined")

    response = deliver(event_about(charge, event_type="charge.failed"))

    assert response.status_code == 200
    payment = payment_for_order(order_id=placed_order.id)
    assert (payment.status, payment.failure_code) == ("failed", "card_declined")


# --- the attack: a correctly signed event the provider's records do not back ------------------------


def test_a_forged_charge_succeeded_captures_nothing_and_the_order_is_not_confirmed(psp, placed_order):
    """Whoever holds the signing secret signs `charge.succeeded` for an order nobody
    paid. The provider has no charge for it: the payment stays pending, nothing enters
    the ledger, the order is not confirmed."""
    payment = payment_for_order(order_id=placed_order.id)
    event = charge_event(reference=str(placed_order.id), amount=2500)

    response = deliver(event)

    assert response.status_code == 200
    assert response.json()["outcome"] == "not_confirmed"
    after = payment_for_order(order_id=placed_order.id)
    assert (after.status, after.provider_charge_id) == ("pending", None)
    assert _captures(payment.id) == 0
    assert order_get(order_id=placed_order.id).status == "pending"
    row = ProviderWebhookEvent.objects.get(event_id=event["id"])
    assert row.outcome == "not_confirmed" and "no settled charge" in row.note


def test_a_forged_event_naming_another_orders_real_charge_captures_nothing(psp, placed_order):
    """The charge id is real (another order's, succeeded), the reference is this
    order's: the provider's records for this order still show no charge."""
    from orders.services import order_place

    other = order_place(
        client_id=1, customer_email="bob@example.com", currency="EUR", payment_method="pm_card_ok",
        lines=[("MUG", 2)],
    )  # fmt: skip
    real = provider_charge(psp, other)
    forged = {**real, "reference": str(placed_order.id)}

    response = deliver(event_about(forged, event_type="charge.succeeded"))

    assert response.json()["outcome"] == "not_confirmed"
    assert payment_for_order(order_id=placed_order.id).status == "pending"
    # The other order is settled only by its own evidence, not by this event.
    assert payment_for_order(order_id=other.id).status == "pending"


def test_a_succeeded_event_for_a_declined_charge_fails_the_payment_as_the_provider_says(psp, placed_order):
    declined = provider_charge(psp, placed_order, payment_method="pm_card_declined")
    forged = {**declined, "status": "succeeded", "failure_code": None}

    response = deliver(event_about(forged, event_type="charge.succeeded"))

    assert response.json()["outcome"] == "applied"
    payment = payment_for_order(order_id=placed_order.id)
    assert (payment.status, payment.failure_code) == ("failed", "card_declined")
    assert _captures(payment.id) == 0


def test_when_the_provider_cannot_be_asked_the_event_is_refused_for_redelivery(psp, placed_order):
    _unknown(placed_order)
    charge = provider_charge(psp, placed_order)
    event = event_about(charge, event_type="charge.succeeded")
    psp.set_faults(error_rate=1.0)

    refused = deliver(event)

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "provider_unavailable"
    assert not ProviderWebhookEvent.objects.filter(event_id=event["id"]).exists()
    assert payment_for_order(order_id=placed_order.id).status == "unknown"

    psp.clear_faults()
    again = deliver(event)  # the provider delivers it again later

    assert (again.status_code, again.json()["outcome"]) == (200, "applied")
    assert payment_for_order(order_id=placed_order.id).status == "captured"


# --- recorded once --------------------------------------------------------------------------------------


def test_the_same_event_twice_is_processed_once(psp, placed_order):
    _unknown(placed_order)
    event = event_about(provider_charge(psp, placed_order), event_type="charge.succeeded")

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

    payment_id = payment_for_order(order_id=placed_order.id).id
    assert StateLog.objects.filter(transition="capture", object_id=payment_id).count() == 1
    assert _captures(payment_id) == 1


def test_an_event_for_a_settled_payment_changes_nothing(db, placed_order):
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
    event = charge_event(reference=str(placed_order.id), id=["not", "an", "id"])

    response = deliver(event)

    assert response.status_code == 200
    assert response.json()["outcome"] == "rejected"
    assert payment_for_order(order_id=placed_order.id).status == "pending"


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_of_one_event_apply_it_once(psp, placed_order):
    _unknown(placed_order)
    event = event_about(provider_charge(psp, placed_order), event_type="charge.succeeded")
    n = 5

    responses = at_once(n, lambda i: deliver(event))

    assert raised(responses) == []
    assert [r.status_code for r in responses] == [200] * n
    assert sorted(r.json()["duplicate"] for r in responses) == [False] + [True] * (n - 1)
    assert ProviderWebhookEvent.objects.get(event_id=event["id"]).deliveries == n
    payment = payment_for_order(order_id=placed_order.id)
    assert payment.status == "captured" and _captures(payment.id) == 1
