"""Admin: states read-only; transitions run as actions only when legal and permitted,
through the services, with the staff member and a reason in the audit row."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from payments import services
from payments.choices import PaymentStatus, RefundStatus
from payments.models import Payment, Refund

from .factories import StaffUserFactory
from .helpers import payment_in_state, state_logs

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:payments_payment_changelist"


def _staff_client(client, *perms):
    user = StaffUserFactory()
    codenames = [p.split(".")[1] for p in perms]
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="payments", codename__in=codenames)
    )
    client.force_login(user)
    return user


def _act(client, url_name, action, objs, reason="checked the provider dashboard", provider_reference=""):
    return client.post(
        reverse(url_name),
        {
            "action": action,
            "_selected_action": [o.pk for o in objs],
            "reason": reason,
            "provider_reference": provider_reference,
        },
        follow=True,
    )


def test_fail_action_runs_the_service_with_user_and_reason(client):
    user = _staff_client(
        client, "payments.view_payment", "payments.change_payment", "payments.resolve_payment"
    )
    payment = payment_in_state(PaymentStatus.UNKNOWN)
    assert "transition_fail" in client.get(reverse(CHANGELIST)).content.decode()

    response = _act(client, CHANGELIST, "transition_fail", [payment], provider_reference="no_charge_found")

    assert response.status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == (PaymentStatus.FAILED, "no_charge_found")
    log = state_logs(payment)[-1]
    assert (log.by, log.description, log.source_state) == (user, "checked the provider dashboard", "unknown")


def test_capture_action_posts_to_the_ledger(client):
    _staff_client(client, "payments.view_payment", "payments.change_payment", "payments.resolve_payment")
    payment = payment_in_state(PaymentStatus.UNKNOWN)

    _act(client, CHANGELIST, "transition_capture", [payment], provider_reference="ch_found")

    payment.refresh_from_db()
    assert (payment.status, payment.provider_charge_id) == (PaymentStatus.CAPTURED, "ch_found")
    assert payment.ledger_transactions.count() == 1


def test_action_without_reason_changes_nothing(client):
    _staff_client(client, "payments.view_payment", "payments.change_payment", "payments.resolve_payment")
    payment = payment_in_state(PaymentStatus.PENDING)

    response = _act(client, CHANGELIST, "transition_fail", [payment], reason="  ")

    assert "Give a reason" in response.content.decode()
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING


def test_illegal_rows_are_skipped_and_named(client):
    _staff_client(client, "payments.view_payment", "payments.change_payment", "payments.resolve_payment")
    captured = payment_in_state(PaymentStatus.CAPTURED)
    pending = payment_in_state(PaymentStatus.PENDING)

    response = _act(client, CHANGELIST, "transition_fail", [captured, pending])

    assert Payment.objects.get(pk=captured.pk).status == PaymentStatus.CAPTURED
    assert Payment.objects.get(pk=pending.pk).status == PaymentStatus.FAILED
    assert (
        f"not allowed from the current state (or not permitted) for {captured.pk}"
        in response.content.decode()
    )


def test_transitions_are_not_offered_without_permission(client):
    _staff_client(client, "payments.view_payment", "payments.change_payment")
    payment = payment_in_state(PaymentStatus.PENDING)

    response = client.get(reverse(CHANGELIST))
    page = response.content.decode()
    _act(client, CHANGELIST, "transition_fail", [payment])

    assert response.status_code == 200
    assert str(payment.order_id) in page
    assert "transition_fail" not in page
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING


def test_refund_succeed_action(client, admin_client, admin_user):
    payment = payment_in_state(PaymentStatus.CAPTURED, amount=Decimal("10.00"))
    refund = services.refund_create(payment_id=payment.pk, amount=Decimal("10.00"), reason="r")

    _act(
        admin_client,
        "admin:payments_refund_changelist",
        "transition_succeed",
        [Refund.objects.get(pk=refund.id)],
        provider_reference="re_dash",
    )

    refund_row = Refund.objects.get(pk=refund.id)
    assert (refund_row.status, refund_row.provider_refund_id) == (RefundStatus.SUCCEEDED, "re_dash")
    assert state_logs(refund_row)[-1].by == admin_user
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.REFUNDED


def test_change_pages_render_with_history_and_fields_read_only(admin_client):
    payment = payment_in_state(PaymentStatus.PARTIALLY_REFUNDED)

    page = admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()

    assert "refund_partially" in page  # the StateLog inline
    assert 'name="status"' not in page  # no editable status field
    txn = payment.ledger_transactions.first()
    assert (
        admin_client.get(reverse("admin:payments_ledgertransaction_change", args=[txn.pk])).status_code == 200
    )


@pytest.mark.parametrize(
    "model", ["payment", "refund", "ledgertransaction", "ledgerentry", "ledgeraccount", "providerattempt"]
)
def test_nothing_is_added_by_hand(admin_client, model):
    assert admin_client.get(reverse(f"admin:payments_{model}_add")).status_code == 403


def test_ledger_rows_cannot_be_deleted(admin_client):
    payment = payment_in_state(PaymentStatus.CAPTURED)
    txn = payment.ledger_transactions.first()
    url = reverse("admin:payments_ledgertransaction_delete", args=[txn.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
