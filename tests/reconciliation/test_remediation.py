"""Remediations: dry run, real run through the provider and the owning apps' services,
idempotency, permissions, audit, and the next pass resolving the incident."""

from decimal import Decimal

import pytest

from payments.selectors import ledger_account_balance, payment_for_order, provider_attempts_for_charge
from reconciliation.detectors import detector_get
from reconciliation.errors import ActionNotPermitted
from reconciliation.models import Incident, IncidentNote, ProviderRefund, Remediation
from reconciliation.services import reconcile_run, remediation_apply, remediation_preview
from reconciliation.services.remediation import RemediationNotAllowed

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def _run(*names):
    return reconcile_run(detectors=[detector_get(n) for n in names])


@pytest.fixture
def duplicate(psp, shop):
    client = psp.client()
    order_id, kept = shop.checkout(client)
    extra = shop.charge(client, order_id, "retry-with-new-key")
    _run("duplicate_charge")
    return Incident.objects.get(type="duplicate_charge"), kept, extra, client


def test_refunding_the_extra_charge_dry_run_then_once_then_resolved(duplicate, support_user, psp):
    incident, kept, extra, client = duplicate

    preview = remediation_preview(incident_id=incident.pk)

    assert (preview.action, preview.allowed, preview.moves_money) == ("refund_extra_charges", True, True)
    assert (preview.money_moved, preview.currency) == (Decimal("25.00"), "EUR")
    assert [r["charge_id"] for r in preview.refunds] == [extra.id]
    assert preview.required_permissions == (
        "reconciliation.remediate_incident",
        "reconciliation.refund_incident",
    )
    assert list(client.iter_refunds(charge=extra.id)) == []  # the dry run did nothing

    result = remediation_apply(incident_id=incident.pk, by=support_user, reason="customer charged twice")
    again = remediation_apply(incident_id=incident.pk, by=support_user, reason="double click")

    assert (result.state, result.money_moved, result.already_applied) == (
        "succeeded",
        Decimal("25.00"),
        False,
    )
    assert (again.remediation_id, again.already_applied) == (result.remediation_id, True)
    refunds = list(client.iter_refunds(charge=extra.id))
    assert [(r.amount, r.status) for r in refunds] == [(2500, "succeeded")]  # refunded once
    assert list(client.iter_refunds(charge=kept)) == []  # the order's own charge is untouched
    # the refund of the extra charge is on the order's payment timeline
    [attempt] = provider_attempts_for_charge(charge_id=extra.id)
    assert (attempt.payment_id, attempt.kind, attempt.provider_object_id) == (
        payment_for_order(order_id=incident.order_id).id,
        "refund",
        refunds[0].id,
    )
    stored = Remediation.objects.get()
    assert (stored.by, stored.reason, stored.automatic, stored.attempts) == (
        support_user, "customer charged twice", False, 1,
    )  # fmt: skip
    assert stored.effects["refunds"][0]["refund_id"] == refunds[0].id
    assert (
        "refund_extra_charges by sam-support: succeeded, 25.00 EUR moved" in IncidentNote.objects.get().text
    )
    assert remediation_preview(incident_id=incident.pk).already_applied is True
    # the next pass re-checks and resolves it (and finds no clearing mismatch either)
    run = reconcile_run()
    assert (run.opened, run.auto_resolved) == (0, 1)
    assert Incident.objects.get(pk=incident.pk).state == "resolved"


def test_permissions(duplicate, finance_user, support_user):
    incident, *_ = duplicate
    support_user.groups.clear()  # staff, but without the support role's permissions
    for user in (finance_user, support_user, None):
        with pytest.raises(ActionNotPermitted):
            remediation_apply(incident_id=incident.pk, by=user, reason="try")
    assert Remediation.objects.count() == 0


def test_remediate_without_refund_permission_may_not_move_money(duplicate, support_user):
    from django.contrib.auth.models import Permission

    incident, *_ = duplicate
    support_user.groups.clear()
    support_user.user_permissions.add(Permission.objects.get(codename="remediate_incident"))
    support_user = type(support_user).objects.get(pk=support_user.pk)  # drop the permission cache

    with pytest.raises(ActionNotPermitted) as caught:
        remediation_apply(incident_id=incident.pk, by=support_user, reason="try")

    assert "reconciliation.refund_incident" in caught.value.details["required_permissions"]


def test_orphan_charge_refunded_through_the_provider(psp, shop, superuser):
    client = psp.client()
    orphan = client.create_charge(
        amount=1234, currency="EUR", payment_method="pm_card_ok", reference="987654", idempotency_key="o-1"
    ).charge
    _run("charge_without_order")
    incident = Incident.objects.get(type="charge_without_order")
    assert incident.details["reason"] == "order_missing"
    assert remediation_preview(incident_id=incident.pk, action="confirm_order").allowed is False

    result = remediation_apply(incident_id=incident.pk, by=superuser, reason="no such order: give it back")

    assert (result.state, result.money_moved) == ("succeeded", Decimal("12.34"))
    assert ProviderRefund.objects.filter(charge_provider_id=orphan.id).count() == 1  # recorded locally
    # payments made the call and recorded it, though no payment holds the charge
    [attempt] = provider_attempts_for_charge(charge_id=orphan.id)
    assert (attempt.payment_id, attempt.kind, attempt.outcome) == (None, "refund", "succeeded")
    assert attempt.provider_object_id == ProviderRefund.objects.get(charge_provider_id=orphan.id).provider_id
    assert _run("charge_without_order").auto_resolved == 1


def test_confirming_a_pending_order_whose_charge_exists(psp, shop, superuser, settings):
    """A charge timed out after the provider committed it; the order sat pending past its SLA."""
    settings.RECONCILIATION = {**settings.RECONCILIATION, "PENDING_ORDER_SLA_SECONDS": 0}
    client = psp.client()
    order_id = shop.order()
    payment = shop.payment(order_id)
    psp.set_faults(timeout_after_commit_rate=1)
    lost = client.create_charge(
        amount=2500, currency="EUR", payment_method="pm_card_ok", reference=str(order_id),
        idempotency_key=payment.charge_idempotency_key,
    )  # fmt: skip
    psp.clear_faults()
    assert lost.outcome == "unknown"
    _run("charge_without_order")
    incident = Incident.objects.get(type="charge_without_order")
    assert incident.details["reason"] == "order_pending_past_sla"

    preview = remediation_preview(incident_id=incident.pk, action="confirm_order")
    assert (preview.allowed, preview.moves_money) == (True, False)
    assert preview.stock_changes == [{"sku": shop.SKU, "on_hand_delta": -1, "from": "available"}]

    remediation_apply(
        incident_id=incident.pk, by=superuser, reason="charge exists; confirm", action="confirm_order"
    )

    payment = payment_for_order(order_id=order_id)
    assert payment.status == "captured"
    assert ledger_account_balance(code="provider_clearing", currency="EUR") == Decimal("25.00")
    run = reconcile_run()
    assert run.opened == 0
    assert Incident.objects.get(pk=incident.pk).state == "resolved"


def test_confirm_refused_when_stock_does_not_allow(psp, superuser, settings):
    from inventory.services import stock_set_on_hand
    from tests.reconciliation.conftest import Shop

    settings.RECONCILIATION = {**settings.RECONCILIATION, "PENDING_ORDER_SLA_SECONDS": 0}
    shop = Shop(stock=1)
    client = psp.client()
    order_id = shop.order()
    shop.payment(order_id)
    shop.charge(client, order_id, "unrecorded")
    stock_set_on_hand(sku=shop.SKU, on_hand=0, reason="damaged")
    _run("charge_without_order")
    incident = Incident.objects.get(type="charge_without_order")

    preview = remediation_preview(incident_id=incident.pk, action="confirm_order")
    assert preview.allowed is False
    assert "0 available, 1 needed" in preview.why_not
    with pytest.raises(RemediationNotAllowed):
        remediation_apply(incident_id=incident.pk, by=superuser, reason="try", action="confirm_order")
    assert Remediation.objects.get().state == "failed"
    assert payment_for_order(order_id=order_id).status == "pending"


def test_auto_policy_refunds_small_duplicates_only_when_enabled(psp, shop, settings):
    client = psp.client()
    order_id, _ = shop.checkout(client)
    shop.charge(client, order_id, "dup")

    reconcile_run()  # the default: money-moving automation off
    assert Remediation.objects.count() == 0

    settings.RECONCILIATION = {
        **settings.RECONCILIATION,
        "AUTO_REMEDIATION": {"duplicate_charge": {"enabled": True, "max_amount": "10.00"}},
    }
    reconcile_run()
    assert Remediation.objects.count() == 0  # 25.00 is above the limit

    settings.RECONCILIATION["AUTO_REMEDIATION"]["duplicate_charge"]["max_amount"] = "50.00"
    reconcile_run()
    remediation = Remediation.objects.get()
    assert (remediation.automatic, remediation.by, remediation.state) == (True, None, "succeeded")
    assert reconcile_run().auto_resolved >= 1
    assert not Incident.objects.filter(type="duplicate_charge", state="open").exists()
    assert Remediation.objects.count() == 1
