"""Every listed fact is recorded in the transaction of its state change: exactly one
event per fact, none when the change rolls back, none when a service repeats."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from inventory.services import product_upsert, stock_set_on_hand
from orders.services import order_cancel, order_confirm, order_place
from outbox.models import Event
from payments import services as payments
from reconciliation.detectors import Finding
from reconciliation.services import incident_dismiss, incidents_auto_resolve, incidents_report
from tests.payments.factories import PaymentFactory, StaffUserFactory

pytestmark = pytest.mark.django_db


def events(aggregate_type: str | None = None) -> list[tuple[str, str]]:
    rows = Event.objects.order_by("serial")
    if aggregate_type:
        rows = rows.filter(aggregate_type=aggregate_type)
    return [(e.type, e.aggregate_id) for e in rows]


@pytest.fixture
def product(db):
    product_upsert(sku="EV-1", name="Event widget", price=Decimal("12.50"), currency="EUR")
    stock_set_on_hand(sku="EV-1", on_hand=100, reason="test stock")


def place() -> int:
    with transaction.atomic():
        return order_place(
            client_id=7, customer_email="e@example.com", currency="EUR", payment_method="pm_card_ok",
            lines=[("EV-1", 2)],
        ).id  # fmt: skip


def test_order_placed_confirmed_cancelled_once_each(product):
    confirmed, cancelled = place(), place()
    order_confirm(order_id=confirmed, reason="test")
    order_confirm(order_id=confirmed, reason="repeat")  # a no-op: no second event
    order_cancel(order_id=cancelled, failure_reason="out_of_stock", reason="test")
    order_cancel(order_id=cancelled, failure_reason="out_of_stock", reason="repeat")
    assert events("order") == [
        ("order.placed", str(confirmed)),
        ("order.placed", str(cancelled)),
        ("order.confirmed", str(confirmed)),
        ("order.cancelled", str(cancelled)),
    ]
    placed = Event.objects.get(type="order.placed", aggregate_id=str(confirmed)).payload["object"]
    assert placed["status"] == "pending" and placed["client_id"] == 7 and placed["total"] == "25.00"
    assert placed["lines"] == [{"sku": "EV-1", "quantity": 2, "unit_price": "12.50", "line_total": "25.00"}]
    gone = Event.objects.get(type="order.cancelled").payload["object"]
    assert (gone["status"], gone["failure_reason"]) == ("cancelled", "out_of_stock")


def test_a_rejected_or_rolled_back_placement_leaves_no_event(product):
    with pytest.raises(Exception), transaction.atomic():  # noqa: B017, PT011
        order_place(client_id=7, customer_email="e@example.com", currency="EUR", payment_method="pm_card_ok",
                    lines=[("NOPE", 1)])  # fmt: skip
    order_id = place()
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012
        order_confirm(order_id=order_id, reason="will roll back")
        raise RuntimeError("the caller's transaction fails after the transition")
    assert events("order") == [("order.placed", str(order_id))]


def test_payment_captured_failed_refunded_partially_and_fully_and_refund_failed(db):
    captured = PaymentFactory(amount=Decimal("100.00"))
    failed = PaymentFactory()
    payments.payment_capture(payment_id=captured.pk, provider_charge_id="ch_1", reason="t")
    payments.payment_capture(payment_id=captured.pk, provider_charge_id="ch_1", reason="repeat")
    payments.payment_fail(payment_id=failed.pk, failure_code="card_declined", reason="t")
    payments.payment_fail(payment_id=failed.pk, failure_code="card_declined", reason="repeat")
    refused = payments.refund_create(payment_id=captured.pk, amount=Decimal("5.00"), reason="t")
    payments.refund_fail(refund_id=refused.id, failure_code="refund_declined", reason="t")
    payments.refund_fail(refund_id=refused.id, failure_code="refund_declined", reason="repeat")
    part = payments.refund_create(payment_id=captured.pk, amount=Decimal("30.00"), reason="t")
    payments.refund_succeed(refund_id=part.id, provider_refund_id="re_1", reason="t")
    payments.refund_succeed(refund_id=part.id, provider_refund_id="re_1", reason="repeat")
    rest = payments.refund_create(payment_id=captured.pk, amount=Decimal("70.00"), reason="t")
    payments.refund_succeed(refund_id=rest.id, provider_refund_id="re_2", reason="t")

    assert [t for t, _ in events("payment")] == [
        "payment.captured",
        "payment.failed",
        "refund.failed",
        "payment.refunded",
        "payment.refunded",
    ]
    objects = [e.payload["object"] for e in Event.objects.filter(type="payment.refunded").order_by("serial")]
    assert [(o["status"], o["refunded_amount"], o["refund"]["amount"]) for o in objects] == [
        ("partially_refunded", "30.00", "30.00"),
        ("refunded", "100.00", "70.00"),
    ]
    assert objects[0]["order_id"] == captured.order_id
    refund_failed = Event.objects.get(type="refund.failed").payload["object"]
    assert refund_failed["refund"]["failure_code"] == "refund_declined"


def test_a_capture_that_rolls_back_leaves_no_event(db):
    payment = PaymentFactory()
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012
        payments.payment_capture(payment_id=payment.pk, provider_charge_id="ch_x", reason="t")
        raise RuntimeError("checkpoint lost its lease")
    assert events("payment") == []


def _finding(n: int) -> Finding:
    return Finding(
        type="duplicate_charge", fingerprint=f"duplicate_charge:ev:{n}", severity="high", order_id=n,
        charge_id=f"ch_ev_{n}", amount_at_risk=Decimal("40.00"), currency="EUR", details={},
    )  # fmt: skip


def test_incident_opened_resolved_dismissed_once_each(db):
    staff = StaffUserFactory(is_superuser=True)
    first, second = incidents_report(findings=[_finding(1), _finding(2)])
    incidents_report(findings=[_finding(1), _finding(2)])  # seen again: no new fact
    incidents_auto_resolve(incident_type="duplicate_charge", still_found={_finding(2).fingerprint})
    incident_dismiss(incident_id=second.incident_id, by=staff, reason="false positive")
    assert events("incident") == [
        ("incident.opened", str(first.incident_id)),
        ("incident.opened", str(second.incident_id)),
        ("incident.resolved", str(first.incident_id)),
        ("incident.dismissed", str(second.incident_id)),
    ]
    opened = Event.objects.filter(type="incident.opened").order_by("serial").first().payload["object"]
    assert (opened["type"], opened["amount_at_risk"], opened["order_id"]) == ("duplicate_charge", "40.00", 1)
