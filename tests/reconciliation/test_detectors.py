"""Each detector against the exact inconsistency it exists for: one incident; a second
pass opens no duplicate; after the fix the next pass resolves it.

States are reached through the owning apps' services and the sandbox provider (with fault
injection where the inconsistency arises that way). States no service can produce
(an unbalanced ledger, a failed saga run) are set up with the owning app's models:
that is test setup, never product code.
"""

from decimal import Decimal

import pytest

from payments.provider import Outcome
from reconciliation.detectors import detector_get
from reconciliation.models import Incident
from reconciliation.services import reconcile_run, remediation_apply

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _pass(name):
    return reconcile_run(detectors=[detector_get(name)])


def _one_then_none_then_resolved(name, fix):
    first = _pass(name)
    assert (first.opened, first.found) == (1, 1), first
    incident = Incident.objects.get(type=name)
    second = _pass(name)
    assert (second.opened, second.found) == (0, 1)
    assert Incident.objects.filter(type=name).count() == 1
    fix(incident)
    third = _pass(name)
    assert (third.found, third.auto_resolved) == (0, 1), third
    assert Incident.objects.get(pk=incident.pk).state == "resolved"
    return incident


def test_charge_without_order_when_a_lost_charge_races_a_cancellation(psp, shop, superuser):
    """timeout_after_commit: the provider charged, the caller never heard; the order was
    then cancelled as payment_failed. The customer paid for a cancelled order."""
    from orders.services import order_cancel
    from payments.services import payment_fail, payment_mark_unknown

    client = psp.client()
    order_id = shop.order()
    payment = shop.payment(order_id)
    psp.set_faults(timeout_after_commit_rate=1)
    lost = client.create_charge(
        amount=2500, currency="EUR", payment_method="pm_card_ok", reference=str(order_id),
        idempotency_key=payment.charge_idempotency_key,
    )  # fmt: skip
    psp.clear_faults()
    assert lost.outcome == Outcome.UNKNOWN
    payment_mark_unknown(payment_id=payment.id, error="read timeout", reason="no answer")
    payment_fail(payment_id=payment.id, failure_code="not_charged", reason="gave up")
    order_cancel(order_id=order_id, failure_reason="payment_failed", reason="charge failed")

    def fix(incident):
        assert incident.details["reason"] == "order_cancelled_unrefunded"
        assert (incident.order_id, incident.amount_at_risk) == (order_id, Decimal("25.00"))
        remediation_apply(incident_id=incident.pk, by=superuser, reason="order cancelled; refund")

    _one_then_none_then_resolved("charge_without_order", fix)


def test_amount_mismatch(psp, shop):
    client = psp.client()
    order_id, charge_id = shop.checkout(client, amount_minor=2600)  # the provider took 26.00 for 25.00

    def fix(incident):
        assert (incident.order_id, incident.charge_id, incident.amount_at_risk) == (
            order_id,
            charge_id,
            Decimal("1.00"),
        )
        assert incident.details["order_total"] == "25.00"
        client.create_refund(charge_id=charge_id, amount=2600, idempotency_key="undo-wrong-amount")

    _one_then_none_then_resolved("amount_mismatch", fix)


def test_order_confirmed_without_capture(psp, shop):
    from inventory.services import stock_commit
    from orders.services import order_confirm

    client = psp.client()
    order_id = shop.order()
    shop.reserve(order_id)
    payment = shop.payment(order_id)
    stock_commit(order_id=order_id, reason="confirmed")
    order_confirm(order_id=order_id, reason="confirmed without a charge")

    def fix(incident):
        assert (incident.order_id, incident.amount_at_risk) == (order_id, Decimal("25.00"))
        shop.charge(client, order_id, payment.charge_idempotency_key)

    _one_then_none_then_resolved("order_confirmed_without_capture", fix)


def test_a_confirmed_order_refunded_in_full_on_purpose_is_no_incident(psp, shop, support_user):
    from payments.selectors import payment_for_order
    from payments.services import payment_refund_through_provider

    client = psp.client()
    order_id, _ = shop.checkout(client)
    payment = payment_for_order(order_id=order_id)
    refunded = payment_refund_through_provider(payment_id=payment.id, reason="goodwill", by=support_user)
    assert refunded.payment.status == "refunded"

    # payments and the provider agree: the money went back, with a person and a reason.
    assert _pass("order_confirmed_without_capture").found == 0


def test_refund_missing_fixed_by_the_refund_payment_remediation(psp, shop, support_user):
    client = psp.client()
    order_id, charge_id = shop.checkout(client)
    shop.cancel_confirmed_without_refund(order_id)

    def fix(incident):
        assert (incident.order_id, incident.charge_id) == (order_id, charge_id)
        result = remediation_apply(incident_id=incident.pk, by=support_user, reason="cancelled: refund")
        assert (result.state, result.money_moved) == ("succeeded", Decimal("25.00"))

    _one_then_none_then_resolved("refund_missing", fix)


def test_refund_unrecorded(psp, shop):
    from payments.services import refund_create, refund_succeed

    client = psp.client()
    order_id, charge_id = shop.checkout(client)
    dashboard = client.create_refund(charge_id=charge_id, amount=1000, idempotency_key="dashboard").refund

    def fix(incident):
        assert (incident.order_id, incident.amount_at_risk) == (order_id, Decimal("10.00"))
        payment = shop.payment(order_id)
        refund = refund_create(payment_id=payment.id, amount=Decimal("10.00"), reason="dashboard refund")
        refund_succeed(refund_id=refund.id, provider_refund_id=dashboard.id, reason="recorded")

    _one_then_none_then_resolved("refund_unrecorded", fix)


def test_stock_drift_held_for_a_cancelled_order_fixed_by_release(shop, support_user):
    from orders.services import order_cancel

    order_id = shop.order(3)
    shop.reserve(order_id, 3)
    order_cancel(order_id=order_id, failure_reason="cancelled_by_client", reason="bug: stock not released")

    def fix(incident):
        assert (incident.details["kind"], incident.sku, incident.order_id) == (
            "held_for_finished_order", shop.SKU, order_id,
        )  # fmt: skip
        result = remediation_apply(incident_id=incident.pk, by=support_user, reason="release stale hold")
        assert result.effects["stock"] == [{"sku": shop.SKU, "held_delta": -3, "available_delta": 3}]

    _one_then_none_then_resolved("stock_drift", fix)


def test_stock_drift_counters_against_reservations(shop):
    from inventory.models import StockLevel

    StockLevel.objects.filter(product_id=shop.SKU).update(reserved=2)  # no held reservation behind it

    def fix(incident):
        assert incident.fingerprint == f"stock_drift:sku:{shop.SKU}:reserved_vs_held"
        StockLevel.objects.filter(product_id=shop.SKU).update(reserved=0)

    _one_then_none_then_resolved("stock_drift", fix)


def test_ledger_imbalance(shop):
    from payments.models import LedgerAccount, LedgerEntry, LedgerTransaction

    # No service can write this (ledger_post refuses; PostgreSQL's commit trigger too, but
    # a test's transaction never commits): the owning app's models, as test setup.
    account = LedgerAccount.objects.create(code="provider_clearing", currency="EUR")
    txn = LedgerTransaction.objects.create(kind="adjustment", currency="EUR", reference="broken")
    LedgerEntry.objects.create(transaction=txn, account=account, amount=Decimal("5.00"), currency="EUR")
    _pass("ledger_imbalance")
    assert set(Incident.objects.values_list("fingerprint", flat=True)) == {
        f"ledger_imbalance:transaction:{txn.pk}",
        "ledger_imbalance:currency:EUR",
    }
    other = LedgerAccount.objects.create(code="revenue", currency="EUR")
    LedgerEntry.objects.create(transaction=txn, account=other, amount=Decimal("-5.00"), currency="EUR")

    run = _pass("ledger_imbalance")

    assert (run.found, run.auto_resolved) == (0, 2)


def test_clearing_mismatch(psp, shop):
    client = psp.client()
    shop.checkout(client)  # booked and charged: in agreement
    orphan = client.create_charge(
        amount=700, currency="EUR", payment_method="pm_card_ok", reference="no-order", idempotency_key="x"
    ).charge

    def fix(incident):
        assert incident.details["ledger_provider_clearing"] == "25.00"
        assert (incident.details["provider_net"], incident.amount_at_risk) == ("32.00", Decimal("7.00"))
        client.create_refund(charge_id=orphan.id, amount=700, idempotency_key="undo")

    _one_then_none_then_resolved("clearing_mismatch", fix)


def test_stuck_saga(shop, superuser):
    from django.utils import timezone

    from sagas.models import SagaRun
    from sagas.services import saga_mark_resolved

    order_id = shop.order()
    run = SagaRun.objects.create(
        saga_type="checkout", subject_id=str(order_id), status="failed", step="charge_payment",
        step_index=1, sla_at=timezone.now(), last_error="provider down",
    )  # fmt: skip

    def fix(incident):
        assert (incident.saga_run_id, incident.order_id, incident.amount_at_risk) == (
            run.pk, order_id, Decimal("25.00"),
        )  # fmt: skip
        saga_mark_resolved(run_id=run.pk, by=superuser, reason="settled by hand")

    _one_then_none_then_resolved("stuck_saga", fix)


def test_a_consistent_shop_has_no_incidents(psp, shop):
    client = psp.client()
    for _ in range(3):
        shop.checkout(client)

    run = reconcile_run()

    assert (run.status, run.found) == ("succeeded", 0), run
