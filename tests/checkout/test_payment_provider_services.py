"""The payments services that call the provider, used by the sagas and reusable by
reconciliation and the back office."""

from decimal import Decimal

import pytest
from django.db import transaction

from core.errors import ConcordError
from payments.selectors import payment_for_order, provider_attempts_for_payment, refunds_for_payment
from payments.services import payment_charge, payment_refund_through_provider, payment_resolve_by_lookup

from .conftest import advance, clearing_balance

pytestmark = pytest.mark.django_db(transaction=True)


def test_provider_calls_refuse_to_run_inside_a_transaction(psp, shop, place):
    order_id = place(lines=[("MUG", 1)])
    payment = payment_for_order(order_id=order_id)
    with pytest.raises(ConcordError) as err, transaction.atomic():
        payment_charge(payment_id=payment.id)
    assert err.value.code == "provider_call_in_transaction"
    with pytest.raises(ConcordError) as err, transaction.atomic():
        payment_refund_through_provider(payment_id=payment.id, reason="x")
    assert err.value.code == "provider_call_in_transaction"
    assert provider_attempts_for_payment(payment_id=payment.id) == []


def test_partial_then_full_refund_then_nothing_left(psp, shop, place):
    order_id = place(lines=[("MUG", 2)])
    assert advance(order_id) == "completed"
    payment = payment_for_order(order_id=order_id)

    first = payment_refund_through_provider(
        payment_id=payment.id, amount=Decimal("5.00"), reason="broken handle"
    )
    rest = payment_refund_through_provider(payment_id=payment.id, reason="returned")
    nothing = payment_refund_through_provider(payment_id=payment.id, reason="again")

    assert (first.outcome, first.refund.amount, first.payment.status) == (
        "succeeded",
        Decimal("5.00"),
        "partially_refunded",
    )
    assert (rest.outcome, rest.refund.amount, rest.payment.status) == (
        "succeeded",
        Decimal("20.00"),
        "refunded",
    )
    assert (nothing.outcome, nothing.refund) == ("succeeded", None)
    assert clearing_balance() == Decimal("0")


def test_a_refund_retried_after_a_provider_error_resumes_the_same_refund(psp, shop, place):
    order_id = place(lines=[("TEE", 1)])
    assert advance(order_id) == "completed"
    payment = payment_for_order(order_id=order_id)
    psp.set_faults(error_after_commit_rate=1.0)

    failed_call = payment_refund_through_provider(payment_id=payment.id, reason="customer asked")
    psp.clear_faults()
    retried = payment_refund_through_provider(payment_id=payment.id, reason="customer asked")

    assert failed_call.outcome == "transient" and failed_call.refund.status == "pending"
    assert retried.outcome == "succeeded" and retried.refund.id == failed_call.refund.id
    assert len(refunds_for_payment(payment_id=payment.id)) == 1
    body = psp.request("GET", "/v1/refunds", params={"charge": payment.provider_charge_id}).json()
    assert len(body["data"]) == 1  # the fixed key made the provider refund once
    assert retried.payment.status == "refunded"


def test_the_same_refund_key_never_refunds_twice(psp, shop, place):
    order_id = place(lines=[("TEE", 1)])
    assert advance(order_id) == "completed"
    payment = payment_for_order(order_id=order_id)
    one = payment_refund_through_provider(payment_id=payment.id, reason="r", idempotency_key="bo:1")
    two = payment_refund_through_provider(payment_id=payment.id, reason="r", idempotency_key="bo:1")
    assert one.refund.id == two.refund.id
    assert len(refunds_for_payment(payment_id=payment.id)) == 1


def test_lookup_leaves_an_unseen_charge_alone_unless_told_no_request_is_in_flight(psp, shop, place):
    order_id = place(lines=[("MUG", 1)])
    payment = payment_for_order(order_id=order_id)

    assert payment_resolve_by_lookup(payment_id=payment.id).status == "pending"
    resolved = payment_resolve_by_lookup(payment_id=payment.id, not_found_means_failed=True)

    assert (resolved.status, resolved.failure_code) == ("failed", "not_charged")
    assert [a.kind for a in provider_attempts_for_payment(payment_id=payment.id)] == ["lookup", "lookup"]


def test_lookup_captures_a_charge_the_provider_made(psp, shop, place):
    order_id = place(lines=[("MUG", 1)])
    payment = payment_for_order(order_id=order_id)
    psp.set_faults(timeout_after_commit_rate=1.0, timeout_seconds=2)
    assert payment_charge(payment_id=payment.id).outcome == "unknown"
    psp.clear_faults()

    resolved = payment_resolve_by_lookup(payment_id=payment.id)

    assert resolved.status == "captured" and resolved.provider_charge_id.startswith("ch_")
    assert clearing_balance() == Decimal("12.50")
