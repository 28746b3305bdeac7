"""The full pass's shared join (detectors/shared.py) reports exactly what each per-order
detector's own statement reports, over every combination of order state, captures,
payment and reservations the detectors tell apart; and a full pass uses it."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from reconciliation.choices import IncidentType
from reconciliation.detectors import DetectionContext, detector_get
from reconciliation.detectors.shared import SHARED, shared_rows
from reconciliation.models import ReconciliationRun
from reconciliation.services import reconcile_run

pytestmark = pytest.mark.django_db

STATUSES = ("pending", "pending_old", "confirmed", "cancelling", "cancelled")
CAPTURES = (
    "none",
    "recorded",
    "unrecorded",
    "two",
    "wrong_amount",
    "wrong_currency",
    "refunded",
    "partly_refunded",
)
PAYMENTS = ("none", "captured", "refunded")
STOCK = ("committed", "held", "none", "short", "released")


def _as_dicts(findings):
    return sorted(
        (
            {
                "fingerprint": f.fingerprint,
                "order_id": f.order_id,
                "payment_id": f.payment_id,
                "charge_id": f.charge_id,
                "sku": f.sku,
                "amount_at_risk": f.amount_at_risk,
                "currency": f.currency,
                "details": f.details,
            }
            for f in findings
        ),
        key=lambda d: d["fingerprint"],
    )


@pytest.fixture
def every_shape(shop, provider_charge, provider_refund):
    """One order per (status, captures, payment, stock) combination, states set on the
    owning apps' rows directly (test setup: no service walks an order into all of them),
    plus charges whose reference names no order."""
    from inventory.models import Reservation
    from inventory.services import stock_set_on_hand
    from orders.models import Order
    from payments.models import Payment

    stock_set_on_hand(sku=shop.SKU, on_hand=10_000, reason="enough for every shape")
    old = timezone.now() - timedelta(hours=2)
    combos = list(itertools.product(STATUSES, CAPTURES, PAYMENTS))
    for n, (status, captures, payment) in enumerate(combos):
        order_id = shop.order(quantity=2)
        stock = STOCK[n % len(STOCK)]
        if stock != "none":
            shop.reserve(order_id, quantity=1 if stock == "short" else 2)
            Reservation.objects.filter(order_id=order_id).update(
                state={"held": "held", "released": "released"}.get(stock, "committed")
            )
        charges = []
        if captures != "none":
            amount = 2600 if captures == "wrong_amount" else 2500
            currency = "USD" if captures == "wrong_currency" else "EUR"
            charges.append(provider_charge(str(order_id), amount, currency=currency))
            if captures == "two":
                charges.append(provider_charge(str(order_id)))
            if captures == "refunded":
                provider_refund(charges[0])
            if captures == "partly_refunded":
                provider_refund(charges[0], 1000)
        if payment != "none":
            p = shop.payment(order_id)
            recorded = charges[0].provider_id if charges and captures != "unrecorded" else None
            Payment.objects.filter(pk=p.id).update(
                status="refunded" if payment == "refunded" else "captured", provider_charge_id=recorded
            )
        real_status = "pending" if status == "pending_old" else status
        Order.objects.filter(pk=order_id).update(
            status=real_status,
            failure_reason="payment_failed" if real_status in ("cancelling", "cancelled") else None,
            created_at=old if status == "pending_old" else timezone.now(),
            updated_at=old,
        )
    provider_charge("999999")  # an order that does not exist
    provider_charge("gift-card")  # a reference that names no order
    provider_refund(provider_charge("888888"))  # refunded: holds no money
    return len(combos)


def test_the_shared_join_reports_what_each_detector_does(every_shape):
    ctx = DetectionContext.full()
    shared = shared_rows(now=ctx.now, names=SHARED)

    assert set(shared.rows) == SHARED
    for name in sorted(SHARED):
        detector = detector_get(name)
        own = list(detector.find(ctx))
        from_shared = list(detector.findings_from(shared.rows[name]))
        assert own, f"{name}: the fixture should give every detector something to find"
        assert _as_dicts(from_shared) == _as_dicts(own), name
        # duplicate_charge keeps the first capture: the order of rows matters there too
        assert [f.fingerprint for f in from_shared] == [f.fingerprint for f in own], name
    # the fixture reaches every shape the detectors tell apart
    kinds = {f.details["kind"] for f in detector_get("stock_drift").find(ctx)}
    assert kinds >= {
        "committed_without_confirmed_order",
        "held_for_finished_order",
        "confirmed_without_commit",
    }
    reasons = {f.details["reason"] for f in detector_get("charge_without_order").find(ctx)}
    assert reasons == {"order_missing", "order_pending_past_sla", "order_cancelled_unrefunded"}


def test_a_full_pass_uses_the_shared_join_and_a_second_one_changes_nothing(every_shape):
    first = reconcile_run(sync=False, full=True)
    detail = ReconciliationRun.objects.get(pk=first.run_id).detectors

    assert set(detail["shared_join"]["detectors"]) == SHARED
    assert all(detail[name].get("shared_join") for name in SHARED)
    assert first.opened == first.found > 0
    second = reconcile_run(sync=False, full=True)
    assert (second.found, second.opened, second.auto_resolved) == (first.found, 0, 0)


def test_a_single_detector_pass_runs_its_own_statement(every_shape):
    result = reconcile_run(sync=False, detectors=[detector_get("duplicate_charge")])
    detail = ReconciliationRun.objects.get(pk=result.run_id).detectors

    assert "shared_join" not in detail
    assert result.found > 0


def _plan_settings_per_statement():
    """Runs shared_rows, recording for each of its statements over the data (they start
    with WITH or read the charges) the planner settings in force when it ran."""
    from django.db import connection

    from reconciliation.detectors.shared import MERGE_PLAN_SETTINGS

    seen: list[tuple[str, tuple[str, ...]]] = []

    def record(execute, sql, params, many, context):
        if sql.lstrip().startswith(("WITH", "SELECT c.provider_id")):
            raw = context["cursor"].cursor  # psycopg's own cursor: not recorded again
            raw.execute("SELECT " + ", ".join(f"current_setting('{n}')" for n in MERGE_PLAN_SETTINGS))
            seen.append((sql, raw.fetchone()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        rows = shared_rows(now=timezone.now(), names=SHARED)
    return rows, seen


def test_the_candidate_statements_alone_run_as_merge_plans(every_shape):
    _, seen = _plan_settings_per_statement()

    candidates = [values for sql, values in seen if "FULL JOIN rv" in sql or "c ON c.order_id = o.id" in sql]
    exact = [values for sql, values in seen if "AS is_" in sql]
    # the money and stock candidate statements; the two exact evaluations
    assert len(candidates) == 2 and len(exact) == 2
    assert all(values == ("off", "off", "off") for values in candidates)
    # the exact evaluation over the candidates keeps the planner's own choice
    assert all(values == ("on", "on", "on") for values in exact)


def test_merge_plans_or_the_planners_own_the_rows_are_the_same(every_shape, settings):
    merged, _ = _plan_settings_per_statement()
    settings.RECONCILIATION = {**settings.RECONCILIATION, "SHARED_JOIN_MERGE_PLANS": False}
    planner, seen = _plan_settings_per_statement()

    assert all(values == ("on", "on", "on") for _, values in seen)
    rows = {name: r for name, r in merged.rows.items() if r}
    assert set(rows) == SHARED  # every detector has rows to compare
    for name in SHARED:
        assert merged.rows[name] == planner.rows[name], name


def test_the_kept_capture_counts_or_counting_every_charge_the_rows_are_the_same(every_shape, settings):
    """KEPT_BALANCES: duplicate candidates from ProviderOrderCaptures (kept by triggers) or
    from a window over every charge (before): the same rows for every detector."""
    ctx = DetectionContext.full()
    kept = shared_rows(now=ctx.now, names=SHARED)
    settings.RECONCILIATION = {**settings.RECONCILIATION, "KEPT_BALANCES": False}
    counted = shared_rows(now=ctx.now, names=SHARED)

    assert kept.rows[str(IncidentType.DUPLICATE_CHARGE)]
    for name in SHARED:
        assert kept.rows[name] == counted.rows[name], name


@pytest.mark.django_db(transaction=True)
def test_side_by_side_on_two_connections_the_rows_are_the_same(every_shape, settings):
    """Outside a transaction (as a pass runs) the stock candidates run on a second
    connection while the money candidates run on this one: same rows as one connection,
    same findings as each detector's own statement."""
    import threading

    from reconciliation.detectors import shared as shared_module

    threads = []
    real = shared_module._on_own_connection

    def spy(fn):
        threads.append(threading.current_thread())
        return real(fn)

    settings.RECONCILIATION = {**settings.RECONCILIATION, "SHARED_JOIN_CONCURRENT": True}
    ctx = DetectionContext.full()
    shared_module._on_own_connection = spy
    try:
        side_by_side = shared_rows(now=ctx.now, names=SHARED)
    finally:
        shared_module._on_own_connection = real
    settings.RECONCILIATION = {**settings.RECONCILIATION, "SHARED_JOIN_CONCURRENT": False}
    one = shared_rows(now=ctx.now, names=SHARED)

    assert len(threads) == 1 and threads[0] is not threading.main_thread()
    for name in sorted(SHARED):
        assert side_by_side.rows[name] == one.rows[name], name
        assert side_by_side.rows[name], name
        detector = detector_get(name)
        from_shared = _as_dicts(detector.findings_from(side_by_side.rows[name]))
        assert from_shared == _as_dicts(detector.find(ctx)), name
