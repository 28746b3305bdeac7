"""Finance metrics from incidents with known timestamps: the numbers add up."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from reconciliation.models import Incident, Remediation
from reconciliation.selectors import finance_metrics, incidents_mttr
from reconciliation.services import incidents_report

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 10)
T = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)


def _incident(
    make_finding, key, *, detected, amount="0.00", currency="EUR", closed_after=None, kind="auto", **kw
):
    (reported,) = incidents_report(
        findings=[make_finding(key, amount=amount, currency=currency, **kw)], now=detected
    )
    if closed_after is not None:
        Incident.objects.filter(pk=reported.incident_id).update(
            state="dismissed" if kind == "dismissed" else "resolved",
            resolved_at=detected + timedelta(seconds=closed_after),
            resolution_kind=kind,
        )
    return reported.incident_id


@pytest.fixture
def history(make_finding, provider_charge, provider_refund):
    _incident(make_finding, "1", detected=T, closed_after=60, kind="auto")
    _incident(make_finding, "2", detected=T, closed_after=120, kind="manual")
    _incident(make_finding, "3", detected=T, closed_after=600, kind="auto")
    _incident(make_finding, "4", detected=T, closed_after=30, kind="dismissed")  # not a resolution
    _incident(make_finding, "5", detected=T + timedelta(days=1), amount="10.00")
    _incident(make_finding, "6", detected=T + timedelta(days=1), amount="5.50")
    charge = provider_charge("7", 300, currency="USD")
    incident_7 = _incident(
        make_finding,
        "7",
        detected=T + timedelta(days=1),
        amount="3.00",
        currency="USD",
        charge_id=charge.provider_id,
    )
    # The refund a remediation made (and a second apply that found it done changes nothing).
    Remediation.objects.create(
        incident_id=incident_7, action="refund_charge", key=f"{incident_7}:refund_charge", state="succeeded",
        automatic=True, reason="policy", money_moved=Decimal("3.00"), currency="USD",
        finished_at=T + timedelta(days=1, hours=1),
    )  # fmt: skip
    Remediation.objects.create(
        incident_id=incident_7, action="confirm_order", key=f"{incident_7}:confirm_order", state="failed",
        reason="no stock", finished_at=T + timedelta(days=1, hours=1),
    )  # fmt: skip
    _incident(make_finding, "8", detected=T - timedelta(days=30))  # outside the range


def test_finance_metrics_numbers(history):
    metrics = finance_metrics(start=DAY, end=DAY + timedelta(days=1), orders_count=2000)

    assert metrics["opened_per_day"] == [
        {"day": "2026-03-10", "type": "duplicate_charge", "count": 4},
        {"day": "2026-03-11", "type": "duplicate_charge", "count": 3},
    ]
    assert metrics["resolved_per_day"] == [{"day": "2026-03-10", "type": "duplicate_charge", "count": 3}]
    # percentile_cont over 60, 120, 600 s: p50 = 120; p90 = 120 + 0.8 * (600 - 120) = 504.
    assert metrics["mttr"] == {"count": 3, "p50_seconds": 120.0, "p90_seconds": 504.0}
    assert metrics["open_now"] == {
        "open": 4,
        "by_currency": [
            {"currency": "EUR", "count": 3, "amount": "15.50"},  # 10.00 + 5.50 + the old 0.00
            {"currency": "USD", "count": 1, "amount": "3.00"},
        ],
    }
    assert metrics["per_1000_orders"] == "3.50"  # 7 incidents in range / 2000 orders
    assert metrics["fixes"] == {"auto": 2, "manual": 1, "dismissed": 1}
    assert metrics["refunds_caused"] == {
        "count": 1,
        "by_currency": [{"currency": "USD", "count": 1, "automatic": 1, "amount": "3.00"}],
    }
    json.dumps(metrics)  # JSON-ready as is


def test_orders_count_may_be_a_callable_and_zero_orders_gives_none(history):
    asked = []

    def orders(start, end):
        asked.append((start, end))
        return 0

    assert finance_metrics(start=DAY, end=DAY, orders_count=orders)["per_1000_orders"] is None
    assert asked == [(DAY, DAY)]
    assert finance_metrics(start=DAY, end=DAY)["per_1000_orders"] is None


def test_an_empty_range_has_no_mttr(db):
    assert incidents_mttr(start=DAY, end=DAY) == {"count": 0, "p50_seconds": None, "p90_seconds": None}
