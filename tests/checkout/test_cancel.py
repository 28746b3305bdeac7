"""Cancelling pending and confirmed orders: it always ends in a refund, never in a
paid cancelled order."""

import threading
import time
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django_fsm_log.models import StateLog

from core.errors import ConcordError
from inventory.selectors import reservations_for_order, stock_level_get
from orders.models import Order
from orders.sagas import ORDER_CANCELLATION
from orders.selectors import order_get
from orders.services import order_request_cancel, order_request_cancellation
from payments.selectors import payment_for_order, refunds_for_payment
from sagas.definition import RetryPolicy
from sagas.selectors import saga_step_log

from .conftest import advance, assert_invariants, clearing_balance, provider_charges, run_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

QUICK = RetryPolicy(max_attempts=5, base_delay=0.3, max_delay=0.3, jitter=0.0)


def cancel(order_id: int, **kwargs):
    with transaction.atomic():
        return order_request_cancel(order_id=order_id, reason=kwargs.pop("reason", ""), **kwargs)


def test_cancel_a_pending_order_before_the_saga_ran(psp, shop, place):
    order_id = place(lines=[("MUG", 2)])

    returned = cancel(order_id)
    again = cancel(order_id)  # idempotent

    # The client is told at once; the saga finishes the job.
    assert (returned.status, returned.failure_reason) == ("cancelling", "cancelled_by_client")
    assert again.status == "cancelling"
    assert run_of(order_id).abort_requested
    assert advance(order_id) == "compensated"
    order = order_get(order_id=order_id)
    assert (order.status, order.failure_reason) == ("cancelled", "cancelled_by_client")
    assert stock_level_get("MUG").reserved == 0
    assert payment_for_order(order_id=order_id).status == "failed"
    assert provider_charges(psp, order_id) == []
    log = StateLog.objects.filter(content_type=ContentType.objects.get_for_model(Order), object_id=order_id)
    assert list(log.order_by("id").values_list("source_state", "state", "transition")) == [
        (None, "pending", "create"),
        ("pending", "cancelling", "request_cancellation"),
        ("cancelling", "cancelled", "finish_cancellation"),
    ]
    assert cancel(order_id).status == "cancelled"  # still a no-op afterwards
    assert_invariants(psp, [order_id], shop)


def test_cancel_while_the_charge_is_in_backoff_looks_the_charge_up_and_releases(
    psp, shop, place, saga_policies
):
    saga_policies(provider_retry=QUICK)
    psp.set_faults(error_rate=1.0)
    order_id = place(lines=[("MUG", 1)])
    assert advance(order_id) == "running"  # reserved; the charge failed once
    psp.clear_faults()

    cancel(order_id, failure_reason="cancelled_by_staff", reason="customer phoned", by=None)
    time.sleep(0.35)
    assert advance(order_id) == "compensated"

    order = order_get(order_id=order_id)
    assert (order.status, order.failure_reason) == ("cancelled", "cancelled_by_staff")
    assert {r.state for r in reservations_for_order(order_id)} == {"released"}
    payment = payment_for_order(order_id=order_id)
    assert (payment.status, payment.failure_code) == ("failed", "not_charged")
    assert_invariants(psp, [order_id], shop)


def test_cancel_after_an_unanswered_charge_refunds_the_charge_the_provider_made(
    psp, shop, place, saga_policies
):
    saga_policies(provider_retry=QUICK)
    psp.set_faults(timeout_after_commit_rate=1.0, timeout_seconds=2)
    order_id = place(lines=[("TEE", 1)])
    assert advance(order_id) == "running"
    assert payment_for_order(order_id=order_id).status == "unknown"
    psp.clear_faults()

    cancel(order_id)
    time.sleep(0.35)
    assert advance(order_id) == "compensated"

    payment = payment_for_order(order_id=order_id)
    assert payment.status == "refunded"
    (charge,) = provider_charges(psp, order_id)
    assert charge["amount_refunded"] == charge["amount"] == 2000
    assert order_get(order_id=order_id).status == "cancelled"
    assert clearing_balance() == Decimal("0")
    assert_invariants(psp, [order_id], shop)


def test_cancel_a_confirmed_order_refunds_restocks_and_cancels(psp, shop, place):
    order_id = place(lines=[("MUG", 2), ("TEE", 1)])
    assert advance(order_id) == "completed"
    assert stock_level_get("MUG").on_hand == 3

    cancelling = cancel(order_id, failure_reason="cancelled_by_client", reason="changed my mind")
    assert cancelling.status == "cancelling"
    assert cancel(order_id).status == "cancelling"  # a second request starts nothing new

    assert advance(order_id, ORDER_CANCELLATION) == "completed"

    order = order_get(order_id=order_id)
    assert (order.status, order.failure_reason) == ("cancelled", "cancelled_by_client")
    payment = payment_for_order(order_id=order_id)
    assert (payment.status, payment.refunded_amount) == ("refunded", Decimal("45.00"))
    (refund,) = refunds_for_payment(payment_id=payment.id)
    assert refund.status == "succeeded"
    (charge,) = provider_charges(psp, order_id)
    assert charge["amount_refunded"] == 4500
    assert (stock_level_get("MUG").on_hand, stock_level_get("TEE").on_hand) == (5, 5)
    assert {r.state for r in reservations_for_order(order_id)} == {"returned"}
    assert clearing_balance() == Decimal("0")
    assert_invariants(psp, [order_id], {"MUG": 5, "TEE": 5})


def test_cancel_rejects_reasons_that_are_not_cancellations(psp, shop, place):
    order_id = place(lines=[("MUG", 1)])
    with pytest.raises(ConcordError) as err:
        cancel(order_id, failure_reason="payment_declined")
    assert err.value.code == "invalid_failure_reason"


def test_charge_succeeding_while_cancel_is_requested_ends_refunded(psp, shop, place):
    """The race: the charge is in flight when the client cancels. The charge
    succeeds, the abort wins the next checkpoint, the run refunds."""
    psp.set_faults(latency_ms=800)
    order_id = place(lines=[("MUG", 1)])
    result: list[str] = []

    def worker() -> None:
        try:
            result.append(advance(order_id))
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    wait_for(
        lambda: run_of(order_id).step == "charge_payment" and run_of(order_id).lease_owner != "",
        timeout=10,
        what="the charge to be in flight",
    )
    cancel(order_id)
    thread.join(30)

    assert result == ["compensated"]
    order = order_get(order_id=order_id)
    assert (order.status, order.failure_reason) == ("cancelled", "cancelled_by_client")
    payment = payment_for_order(order_id=order_id)
    assert payment.status == "refunded"
    (charge,) = provider_charges(psp, order_id)
    assert charge["status"] == "succeeded" and charge["amount_refunded"] == charge["amount"]
    assert stock_level_get("MUG").reserved == 0 and stock_level_get("MUG").on_hand == 5
    assert_invariants(psp, [order_id], shop)


def test_a_refund_the_provider_refuses_leaves_the_run_compensation_failed_and_stuck(
    psp, shop, place, saga_policies
):
    """Someone refunded the charge at the provider behind our back: our refund is
    refused, and the run stops where a person sees it instead of cancelling the order
    as if all were well."""
    from sagas.selectors import saga_runs_stuck

    saga_policies(provider_retry=QUICK)
    psp.set_faults(timeout_after_commit_rate=1.0, timeout_seconds=2)
    order_id = place(lines=[("TEE", 1)])
    assert advance(order_id) == "running"
    psp.clear_faults()
    (charge,) = provider_charges(psp, order_id)
    outside = psp.request(
        "POST", "/v1/refunds", json={"charge": charge["id"]}, headers={"Idempotency-Key": "dash"}
    )
    assert outside.status_code == 200, outside.text

    cancel(order_id)
    time.sleep(0.35)
    assert advance(order_id) == "compensation_failed"

    run = run_of(order_id)
    assert run.id in [r.id for r in saga_runs_stuck()]
    assert run.step == "charge_payment" and run.direction == "compensate"
    # The client was told "cancelling"; it stays so until a person settles the refund.
    assert order_get(order_id=order_id).status == "cancelling"
    (refund,) = refunds_for_payment(payment_id=payment_for_order(order_id=order_id).id)
    assert refund.status == "failed"


def reserve_and_charge(order_id: int, settings) -> None:
    """Run the checkout's first two steps only: with no pass budget, each pass
    stops after one checkpoint (and re-pokes the run, which nobody consumes here)."""
    budget = settings.SAGA_PASS_BUDGET
    settings.SAGA_PASS_BUDGET = 0
    try:
        advance(order_id)  # reserve_stock
        advance(order_id)  # charge_payment
    finally:
        settings.SAGA_PASS_BUDGET = budget


def test_a_cancelling_order_is_never_confirmed_the_charge_is_refunded(psp, shop, place, settings):
    # given: reserved and charged, then the order is marked cancelling without the
    # abort reaching the run (a path other than order_request_cancel)
    order_id = place(lines=[("MUG", 1)])
    run_id = run_of(order_id).id
    reserve_and_charge(order_id, settings)
    assert payment_for_order(order_id=order_id).status == "captured"
    with transaction.atomic():
        order_request_cancellation(
            order_id=order_id, failure_reason="cancelled_by_staff", reason="test: cancel behind the run"
        )
    assert not run_of(order_id).abort_requested

    # when: the run goes on to confirm_order
    assert advance(order_id) == "compensated"

    # then: confirm refused, the charge refunded, the order cancelled with its reason
    order = order_get(order_id=order_id)
    assert (order.status, order.failure_reason) == ("cancelled", "cancelled_by_staff")
    assert payment_for_order(order_id=order_id).status == "refunded"
    assert ("confirm_order", "fail") in [(s.step, s.outcome) for s in saga_step_log(run_id=run_id)]
    assert clearing_balance() == Decimal("0.00")
    assert_invariants(psp, [order_id], shop)


def test_cancel_of_a_checkout_already_compensating_keeps_its_reason(psp, shop, place, settings):
    # given: the card was declined; the run is compensating (release_stock next)
    order_id = place(lines=[("MUG", 1)], payment_method="pm_card_declined")
    reserve_and_charge(order_id, settings)
    assert run_of(order_id).direction == "compensate"

    # when: the client cancels meanwhile
    returned = cancel(order_id)

    # then: cancelling with the true reason at once, cancelled once compensated
    assert (returned.status, returned.failure_reason) == ("cancelling", "payment_declined")
    assert advance(order_id) == "compensated"
    order = order_get(order_id=order_id)
    assert (order.status, order.failure_reason) == ("cancelled", "payment_declined")
    assert stock_level_get("MUG").reserved == 0
    assert_invariants(psp, [order_id], shop)
