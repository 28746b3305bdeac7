"""Unknown outcomes and provider outages: retried with the same key, never guessed."""

import time

import pytest
from django.contrib.auth.models import Permission, User

from orders.selectors import order_get
from payments.selectors import payment_for_order, provider_attempts_for_payment
from payments.services import webhook_event_receive
from sagas.definition import RetryPolicy
from sagas.selectors import saga_runs_stuck
from sagas.services import saga_retry_now

from .conftest import advance, assert_invariants, provider_charges, run_of

pytestmark = pytest.mark.django_db(transaction=True)

QUICK = RetryPolicy(max_attempts=5, base_delay=0.3, max_delay=0.3, jitter=0.0)


def test_timeout_after_commit_is_retried_with_the_same_key_and_charges_once(psp, shop, place, saga_policies):
    saga_policies(provider_retry=QUICK)
    psp.set_faults(timeout_after_commit_rate=1.0, timeout_seconds=2)
    order_id = place(lines=[("MUG", 1)])

    # The provider charged, but the answer never came: the payment is unknown.
    assert advance(order_id) == "running"
    payment = payment_for_order(order_id=order_id)
    assert payment.status == "unknown"
    assert run_of(order_id).step == "charge_payment"
    assert [c["status"] for c in provider_charges(psp, order_id)] == ["succeeded"]

    psp.clear_faults()
    time.sleep(0.35)
    assert advance(order_id) == "completed"

    charges = provider_charges(psp, order_id)
    assert len(charges) == 1
    payment = payment_for_order(order_id=order_id)
    assert (payment.status, payment.provider_charge_id) == ("captured", charges[0]["id"])
    attempts = provider_attempts_for_payment(payment_id=payment.id)
    assert [a.outcome for a in attempts] == ["unknown", "succeeded"]
    assert {a.idempotency_key for a in attempts} == {payment.charge_idempotency_key}
    assert order_get(order_id=order_id).status == "confirmed"
    assert_invariants(psp, [order_id], shop)


def test_an_unknown_payment_is_resolved_by_the_webhook_without_another_charge(
    psp, shop, place, saga_policies
):
    saga_policies(provider_retry=QUICK)
    psp.set_faults(timeout_after_commit_rate=1.0, timeout_seconds=2)
    order_id = place(lines=[("TEE", 1)])
    assert advance(order_id) == "running"
    psp.clear_faults()
    (charge,) = provider_charges(psp, order_id)
    event = {"id": "evt_lost_answer", "type": "charge.succeeded", "data": {"object": charge}}

    first = webhook_event_receive(event_id=event["id"], event_type=event["type"], payload=event)
    again = webhook_event_receive(event_id=event["id"], event_type=event["type"], payload=event)

    assert (first.outcome, again.duplicate) == ("applied", True)
    resolved = payment_for_order(order_id=order_id)
    assert (resolved.status, resolved.provider_charge_id) == ("captured", charge["id"])
    time.sleep(0.35)
    assert advance(order_id) == "completed"
    # The saga saw the captured payment: no second charge request, one lookup (the webhook's).
    attempts = provider_attempts_for_payment(payment_id=resolved.id)
    assert [(a.kind, a.outcome) for a in attempts] == [("charge", "unknown"), ("lookup", "succeeded")]
    assert_invariants(psp, [order_id], shop)


def test_webhook_events_the_providers_records_do_not_back_change_nothing(psp, shop, place):
    order_id = place(lines=[("TEE", 1)])
    payment = payment_for_order(order_id=order_id)
    foreign = {
        "id": "ch_x",
        "status": "succeeded",
        "amount": 1,
        "currency": "EUR",
        "reference": str(order_id),
    }

    def receive(event_type, obj, n):
        event = {"id": f"evt_foreign_{n}", "type": event_type, "data": {"object": obj}}
        return webhook_event_receive(event_id=event["id"], event_type=event_type, payload=event).outcome

    assert receive("charge.succeeded", foreign, 1) == "not_confirmed"
    assert receive("refund.succeeded", {"id": "re_x", "charge": "ch_x", "amount": 1}, 2) == "no_payment"
    assert receive("charge.succeeded", {**foreign, "reference": "x"}, 3) == "no_payment"
    assert payment_for_order(order_id=order_id).status == payment.status == "pending"


def test_attempts_exhausted_leave_the_order_pending_and_the_run_stuck_until_a_person_retries(
    psp, shop, place, saga_policies
):
    psp.set_faults(error_rate=1.0)
    order_id = place(lines=[("MUG", 1)])

    assert advance(order_id) == "failed"

    run = run_of(order_id)
    assert (run.status, run.step, run.attempts) == ("failed", "charge_payment", 3)
    assert "provider_error" in run.last_error
    assert run.id in [r.id for r in saga_runs_stuck()]
    assert order_get(order_id=order_id).status == "pending"
    assert payment_for_order(order_id=order_id).status == "pending"

    # The provider recovers; support retries the run from the back office.
    psp.clear_faults()
    assert provider_charges(psp, order_id) == []
    staff = User.objects.create_user("support-h7", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="retry_run"))
    staff = User.objects.get(pk=staff.pk)
    saga_retry_now(run_id=run.id, by=staff, reason="provider outage is over")

    assert advance(order_id) == "completed"
    assert order_get(order_id=order_id).status == "confirmed"
    assert len(provider_charges(psp, order_id)) == 1
    assert run.id not in [r.id for r in saga_runs_stuck()]
    assert_invariants(psp, [order_id], shop)


def test_error_after_commit_is_transient_and_the_retry_replays_the_same_charge(
    psp, shop, place, saga_policies
):
    saga_policies(provider_retry=QUICK)
    psp.set_faults(error_after_commit_rate=1.0)
    order_id = place(lines=[("MUG", 1)])
    assert advance(order_id) == "running"
    payment = payment_for_order(order_id=order_id)
    assert payment.status == "pending"  # a 5xx is transient, not unknown
    psp.clear_faults()
    time.sleep(0.35)
    assert advance(order_id) == "completed"
    assert len(provider_charges(psp, order_id)) == 1
    assert_invariants(psp, [order_id], shop)
