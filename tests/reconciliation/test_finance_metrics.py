"""Incident metrics from incidents with known timestamps. The finance page's other
figures (per 1,000 orders, refunds caused, attribution) are tested against an
independent count in tests/backoffice/test_finance_figures.py."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from reconciliation.models import Incident, Remediation
from reconciliation.selectors import incidents_mttr, incidents_open_at_risk
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


def test_time_to_resolve_and_money_at_risk_now(history):
    # percentile_cont over 60, 120, 600 s (the dismissal is no resolution): p50 = 120;
    # p90 = 120 + 0.8 * (600 - 120) = 504.
    assert incidents_mttr(start=DAY, end=DAY + timedelta(days=1)) == {
        "count": 3,
        "p50_seconds": 120.0,
        "p90_seconds": 504.0,
    }
    assert incidents_open_at_risk() == {
        "open": 4,
        "by_currency": [
            {"currency": "EUR", "count": 3, "amount": "15.50"},  # 10.00 + 5.50 + the old 0.00
            {"currency": "USD", "count": 1, "amount": "3.00"},
        ],
    }


def test_an_empty_range_has_no_mttr(db):
    assert incidents_mttr(start=DAY, end=DAY) == {"count": 0, "p50_seconds": None, "p90_seconds": None}
