"""Incremental passes: after a complete full evaluation, the per-order detectors look only
at the orders that changed (plus their live incidents' subjects), and find exactly what a
full pass would; a change no timestamp shows is the periodic full pass's to find."""

import pytest

from reconciliation.detectors import detectors_all
from reconciliation.models import DetectorCheckpoint, Incident, ProviderCharge, ReconciliationRun
from reconciliation.services import reconcile_run

pytestmark = pytest.mark.django_db

INCREMENTAL = {d.name for d in detectors_all() if d.incremental}


@pytest.fixture
def confirmed(shop, provider_charge):
    """A consistent confirmed order (provider charge, captured payment, committed stock)."""
    from inventory.services import stock_commit
    from orders.services import order_confirm
    from payments.services import payment_capture

    def make() -> tuple[int, ProviderCharge]:
        order_id = shop.order()
        shop.reserve(order_id)
        payment = shop.payment(order_id)
        charge = provider_charge(str(order_id))
        payment_capture(payment_id=payment.id, provider_charge_id=charge.provider_id, reason="charged")
        stock_commit(order_id=order_id, reason="confirmed")
        order_confirm(order_id=order_id, reason="checkout complete")
        return order_id, charge

    return make


def _modes(result) -> dict[str, str]:
    detail = ReconciliationRun.objects.get(pk=result.run_id).detectors
    return {name: d["mode"] for name, d in detail.items() if "mode" in d}


def test_the_first_pass_is_full_and_the_next_one_incremental(confirmed):
    confirmed()

    first = reconcile_run(sync=False)
    second = reconcile_run(sync=False)

    assert set(_modes(first).values()) == {"full"}
    assert {n for n, m in _modes(second).items() if m == "incremental"} == INCREMENTAL
    assert set(DetectorCheckpoint.objects.values_list("detector", flat=True)) == set(_modes(first))
    assert ReconciliationRun.objects.get(pk=second.run_id).detectors["changes"]["orders"] >= 1


def test_an_incremental_pass_finds_new_conditions_and_resolves_fixed_ones(
    confirmed, provider_charge, provider_refund
):
    # given: a full pass over a clean order
    order_id, _ = confirmed()
    reconcile_run(sync=False)
    # when: a second capture and an orphan charge arrive (synced now), then an incremental pass
    extra = provider_charge(str(order_id))
    provider_charge("shop-gift-card")  # a reference that names no order at all
    found = reconcile_run(sync=False)
    # then
    assert _modes(found)["duplicate_charge"] == "incremental"
    live = dict(Incident.objects.filter(state="open").values_list("type", "charge_id"))
    assert live["duplicate_charge"] == extra.provider_id
    assert "charge_without_order" in live
    # when: the extra capture is refunded at the provider; the next incremental pass resolves it
    provider_refund(extra)
    resolved = reconcile_run(sync=False)
    assert _modes(resolved)["duplicate_charge"] == "incremental"
    assert Incident.objects.get(type="duplicate_charge").state == "resolved"
    assert Incident.objects.get(type="charge_without_order").state == "open"  # unchanged, still true


def test_an_incremental_pass_agrees_with_a_full_pass(confirmed, provider_charge, shop):
    for _ in range(3):
        confirmed()
    reconcile_run(sync=False)
    # Changes of several kinds after the full pass.
    order_id, _ = confirmed()
    provider_charge(str(order_id), amount_minor=2600)  # a second, different capture
    provider_charge("999999")  # an order that does not exist
    pending = shop.order()  # a pending order with a capture, inside its SLA: nothing yet
    provider_charge(str(pending))

    incremental = reconcile_run(sync=False)
    live_after_incremental = set(
        Incident.objects.filter(state__in=["open", "acknowledged"]).values_list("fingerprint", flat=True)
    )
    full = reconcile_run(sync=False, full=True)

    assert set(_modes(full).values()) == {"full"}
    assert (full.opened, full.auto_resolved) == (0, 0)
    assert full.found == incremental.found == len(live_after_incremental)


def test_a_change_no_timestamp_shows_is_left_to_the_full_pass(confirmed, settings):
    # given: a full pass over a clean order last touched two hours ago
    from datetime import timedelta

    from django.utils import timezone

    from inventory.models import Reservation
    from orders.models import Order
    from payments.models import Payment

    order_id, charge = confirmed()
    long_ago = timezone.now() - timedelta(hours=2)
    Order.objects.filter(pk=order_id).update(updated_at=long_ago)
    Payment.objects.filter(order_id=order_id).update(updated_at=long_ago)
    Reservation.objects.filter(order_id=order_id).update(updated_at=long_ago)
    ProviderCharge.objects.filter(pk=charge.pk).update(last_synced_at=long_ago)
    reconcile_run(sync=False)
    # when: the provider record vanishes without any timestamp moving (a hand-made DELETE)
    ProviderCharge.objects.filter(pk=charge.pk).delete()
    incremental = reconcile_run(sync=False)
    # then: the incremental pass cannot see it...
    assert not Incident.objects.filter(type="order_confirmed_without_capture").exists()
    assert _modes(incremental)["order_confirmed_without_capture"] == "incremental"
    # ...and the full pass, due every FULL_PASS_SECONDS (or --full), does
    settings.RECONCILIATION = {**settings.RECONCILIATION, "FULL_PASS_SECONDS": 0}
    due = reconcile_run(sync=False)
    assert _modes(due)["order_confirmed_without_capture"] == "full"
    assert Incident.objects.get(type="order_confirmed_without_capture").order_id == order_id


def test_incremental_passes_can_be_switched_off(confirmed, settings):
    confirmed()
    reconcile_run(sync=False)
    settings.RECONCILIATION = {**settings.RECONCILIATION, "INCREMENTAL": False}

    result = reconcile_run(sync=False)

    assert set(_modes(result).values()) == {"full"}
    assert "changes" not in ReconciliationRun.objects.get(pk=result.run_id).detectors
