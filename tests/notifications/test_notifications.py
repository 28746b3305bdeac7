"""Customer notifications: confirmed, cancelled (reason in plain words), refund issued;
an apology when an incident caused it, recorded on the incident; at most once."""

from __future__ import annotations

from decimal import Decimal
from unittest import mock

import pytest
from django.core import mail
from django.db import transaction

from inventory.services import product_upsert, stock_set_on_hand
from notifications.models import Notification, NotificationStatus
from notifications.selectors import notifications_for_order
from notifications.sending import notification_send, notifications_claim, send_pending
from orders.services import order_cancel, order_confirm, order_place
from outbox import registry
from outbox.relay import relay_pass
from payments import services as payments
from payments.selectors import payment_for_order
from reconciliation.detectors import Finding
from reconciliation.models import Incident, IncidentNote
from reconciliation.services import incidents_report

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def order_id(db):
    product_upsert(sku="NT-1", name="Note widget", price=Decimal("20.00"), currency="EUR")
    stock_set_on_hand(sku="NT-1", on_hand=100, reason="test stock")
    with transaction.atomic():
        return order_place(
            client_id=1, customer_email="ada@example.com", currency="EUR", payment_method="pm_card_ok",
            lines=[("NT-1", 2)],
        ).id  # fmt: skip


def capture(order_id: int):
    payment = payment_for_order(order_id=order_id)
    payments.payment_capture(payment_id=payment.id, provider_charge_id=f"ch_nt_{order_id}", reason="t")
    return payment


def refund(payment, amount: str) -> None:
    created = payments.refund_create(payment_id=payment.id, amount=Decimal(amount), reason="t")
    payments.refund_succeed(refund_id=created.id, provider_refund_id=f"re_nt_{created.id}", reason="t")


def test_confirmed_then_partial_and_full_refund(order_id):
    payment = capture(order_id)
    order_confirm(order_id=order_id, reason="t")
    refund(payment, "15.00")
    refund(payment, "25.00")
    relay_pass()
    relay_pass()
    assert send_pending() == 3
    assert [m.subject for m in mail.outbox] == [
        f"Your order {order_id} is confirmed",
        f"Refund of 15.00 EUR for order {order_id}",
        f"Refund of 25.00 EUR for order {order_id}",
    ]
    assert mail.outbox[0].to == ["ada@example.com"]
    assert "part of your payment" in mail.outbox[1].body and "the full amount" not in mail.outbox[1].body
    assert [n.status for n in notifications_for_order(order_id=order_id)] == ["sent"] * 3
    assert send_pending() == 0  # nothing twice


def test_cancelled_says_why_in_plain_words(order_id):
    order_cancel(order_id=order_id, failure_reason="out_of_stock", reason="t")
    relay_pass()
    send_pending()
    [message] = mail.outbox
    assert message.subject == f"Your order {order_id} was cancelled"
    assert "because an item you ordered is out of stock" in message.body
    assert "sorry" not in message.body.lower()


def test_a_refund_caused_by_an_incident_is_an_apology_and_the_incident_records_it(order_id):
    payment = capture(order_id)
    order_confirm(order_id=order_id, reason="t")
    [reported] = incidents_report(
        findings=[
            Finding(
                type="refund_missing",
                fingerprint=f"refund_missing:{order_id}",
                severity="high",
                order_id=order_id,
                charge_id=f"ch_nt_{order_id}",
                amount_at_risk=Decimal("40.00"),
                currency="EUR",
                details={},
            )
        ]
    )
    refund(payment, "40.00")  # the remediation's refund, while the incident is open
    relay_pass()
    send_pending()
    confirmed, refunded = mail.outbox
    assert "sorry" not in confirmed.body.lower()
    assert refunded.subject == f"We are sorry: we refunded 40.00 EUR for order {order_id}"
    assert f"case {reported.incident_id}" in refunded.body
    note = Notification.objects.get(kind="refund_issued")
    assert (note.apology, note.incident_id) == (True, reported.incident_id)
    incident = Incident.objects.get(pk=reported.incident_id)
    assert incident.customer_notified_at is not None
    assert (
        IncidentNote.objects.filter(incident=incident, text__startswith="Customer told by e-mail").count()
        == 1
    )


def test_at_most_once_per_event_even_if_the_consumer_runs_again(order_id):
    order_confirm(order_id=order_id, reason="t")
    relay_pass()
    # Replay the whole stream to the consumer (as if its position were lost).
    from outbox.models import ConsumerState

    ConsumerState.objects.filter(pk="notifications").update(position=0)
    relay_pass()
    assert Notification.objects.count() == 1
    send_pending()
    assert len(mail.outbox) == 1


def test_a_sender_that_dies_after_the_claim_never_sends_twice(order_id):
    order_confirm(order_id=order_id, reason="t")
    relay_pass()
    [claimed] = notifications_claim()  # then the process dies before sending
    assert send_pending() == 0
    assert Notification.objects.get(pk=claimed).status == NotificationStatus.SENDING
    assert mail.outbox == []


def test_a_mail_server_that_refuses_is_retried_then_failed(order_id, settings):
    settings.NOTIFICATION_MAX_ATTEMPTS = 2
    order_confirm(order_id=order_id, reason="t")
    relay_pass()
    with mock.patch(
        "notifications.sending.EmailMessage.send", side_effect=ConnectionRefusedError("smtp down")
    ):
        [n] = notifications_claim()
        assert notification_send(n) == NotificationStatus.PENDING
        Notification.objects.update(next_attempt_at="2000-01-01T00:00:00Z")
        [n] = notifications_claim()
        assert notification_send(n) == NotificationStatus.FAILED
    failed = Notification.objects.get()
    assert "smtp down" in failed.last_error and mail.outbox == []


def test_the_consumer_is_registered():
    assert "notifications" in registry.names() and "webhooks" in registry.names()
