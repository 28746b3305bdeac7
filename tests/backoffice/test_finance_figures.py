"""Finance's figures add up: the page's and the export's numbers equal an independent
SQL count over the owners' tables, written here and sharing no code with the page
(issue 14: attribution from history, refunds caused by incidents whatever path,
incidents per 1,000 orders without false positives, customer-impacting incidents and
apologies, money at risk)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from outbox.relay import relay_pass
from reconciliation.services import (
    Finding,
    incident_customer_notified,
    incident_dismiss,
    incidents_auto_resolve,
    incidents_report,
)

from .test_refund_to_provider import eager  # noqa: F401 - the fixture: refund tasks run inline

pytestmark = pytest.mark.django_db


def one(sql: str, params=()) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def independent_figures(day) -> dict:
    """The day's figures, straight from the source tables."""
    orders = one("SELECT count(*) FROM orders_order WHERE (created_at AT TIME ZONE 'UTC')::date = %s", [day])[
        0
    ]
    revenue = one(
        "SELECT coalesce(sum(p.amount), 0) FROM payments_ledgertransaction t JOIN payments_payment p"
        " ON p.id = t.payment_id WHERE t.kind = 'capture' AND (t.created_at AT TIME ZONE 'UTC')::date = %s",
        [day],
    )[0]
    incidents, at_risk = one(
        "SELECT count(*), coalesce(sum(amount_at_risk), 0) FROM reconciliation_incident"
        " WHERE state <> 'dismissed' AND (detected_at AT TIME ZONE 'UTC')::date = %s",
        [day],
    )
    refunds_caused, refunded_caused = one(
        """
        SELECT count(*), coalesce(sum(r.amount), 0)
        FROM payments_ledgertransaction t
        JOIN payments_refund r ON r.id = t.refund_id
        JOIN payments_payment p ON p.id = r.payment_id
        WHERE t.kind = 'refund' AND (t.created_at AT TIME ZONE 'UTC')::date = %s AND EXISTS (
            SELECT 1 FROM reconciliation_incident i
            WHERE i.order_id = p.order_id AND i.state <> 'dismissed'
              AND i.detected_at <= t.created_at AND (i.resolved_at IS NULL OR i.resolved_at >= t.created_at))
        """,
        [day],
    )
    attribution = dict(
        _rows(
            """
            SELECT CASE
                WHEN i.state = 'dismissed' THEN 'dismissed'
                WHEN i.resolution_kind = 'manual' OR i.resolved_by_id IS NOT NULL THEN 'person'
                WHEN EXISTS (SELECT 1 FROM reconciliation_remediation m WHERE m.incident_id = i.id
                             AND m.by_id IS NOT NULL AND NOT m.automatic AND m.state = 'succeeded') THEN 'person'
                WHEN EXISTS (SELECT 1 FROM backoffice_staffaction a WHERE a.order_id = i.order_id
                             AND a.created_at BETWEEN i.detected_at AND i.resolved_at) THEN 'person'
                ELSE 'system' END AS who, count(*)
            FROM reconciliation_incident i
            WHERE i.state IN ('resolved', 'dismissed') AND (i.resolved_at AT TIME ZONE 'UTC')::date = %s
            GROUP BY who
            """,
            [day],
        )
    )
    impacting, apologies = one(
        "SELECT count(*), count(customer_notified_at) FROM reconciliation_incident WHERE state <> 'dismissed'"
        " AND type IN ('charge_without_order', 'duplicate_charge', 'amount_mismatch', 'refund_missing', 'stuck_saga')"
        " AND (detected_at AT TIME ZONE 'UTC')::date = %s",
        [day],
    )
    return {
        "orders": orders,
        "revenue": revenue,
        "incidents": incidents,
        "per_1000": str((Decimal(incidents) * 1000 / orders).quantize(Decimal("0.01"))),
        "money_at_risk": at_risk,
        "refunds_caused": refunds_caused,
        "refunded_caused": refunded_caused,
        "attribution": {k: attribution.get(k, 0) for k in ("person", "system", "dismissed")},
        "impacting": impacting,
        "apologies": apologies,
    }


def _rows(sql, params):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def staff_refund(client, order_id, amount, key):
    data = {"op": "refund", "amount": amount, "reason": "incident fix", "action_key": key, "confirm": "1"}
    return client.post(reverse("backoffice:order-action", args=[order_id]), data, follow=True)


@pytest.mark.usefixtures("eager")
def test_the_page_and_the_export_equal_an_independent_count(
    finance, support, support_user, shop, make_incident, django_capture_on_commit_callbacks
):
    # given: a day of orders (one declined) and incidents closed every way
    fixed_by_person, healed, false_positive, stays_open, untouched = (shop.confirmed() for _ in range(5))
    shop.provider_down()
    declined, _ = shop.failed_checkout()
    shop.provider_recovers()

    a = make_incident(order_id=fixed_by_person, amount="60.00")  # a person refunds, the re-check closes it
    b = make_incident(order_id=healed, type="refund_missing", amount="60.00")  # heals by itself
    c = make_incident(order_id=false_positive, amount="5.00")  # a false positive
    # detected yesterday, still open: not today's incident, but today's refund it caused counts
    incidents_report(
        findings=[
            Finding(
                type="stuck_saga",
                fingerprint=f"stuck_saga:bo:{stays_open}",
                severity="high",
                order_id=stays_open,
                amount_at_risk=Decimal("60.00"),
                currency="EUR",
            )
        ],
        now=timezone.now() - timedelta(days=1),
    )
    make_incident(order_id=None, type="stock_drift", amount="0.00")
    with django_capture_on_commit_callbacks(execute=True):
        staff_refund(support, fixed_by_person, "60.00", "fix-a")  # staff refund while A is live
    with django_capture_on_commit_callbacks(execute=True):
        staff_refund(support, stays_open, "5.00", "fix-d")  # caused by yesterday's open incident
    with django_capture_on_commit_callbacks(execute=True):
        staff_refund(support, untouched, "10.00", "goodwill")  # no incident: not caused by one
    incident_dismiss(incident_id=c, by=support_user, reason="the provider's own test charge")
    incidents_auto_resolve(incident_type="duplicate_charge", still_found=set())  # the next pass: A is gone
    incidents_auto_resolve(incident_type="refund_missing", still_found=set())
    incident_customer_notified(incident_id=a, channel="email", summary="apology sent")
    relay_pass(budget=10)

    # when
    today = timezone.now().date()
    expected = independent_figures(today)
    one_day = f"?start={today}&end={today}"
    response = finance.get(reverse("backoffice:finance") + one_day)
    page = response.content.decode()
    totals, history = response.context["totals"], response.context["history"]
    export = list(
        csv.reader(io.StringIO(finance.get(reverse("backoffice:finance-csv") + one_day).content.decode()))
    )

    # then: the sanity of the scenario itself
    assert expected["orders"] == 6
    assert expected["attribution"] == {"person": 1, "system": 1, "dismissed": 1}
    assert (expected["refunds_caused"], expected["refunded_caused"]) == (2, Decimal("65.00"))
    # and the page and the export agree with it
    (eur,) = totals["by_currency"]
    assert (totals["orders"], eur["revenue"], totals["incidents"]) == (
        expected["orders"],
        expected["revenue"],
        expected["incidents"],
    )
    assert totals["per_1000"] == expected["per_1000"]
    assert eur["money_at_risk"] == expected["money_at_risk"]
    assert history["attribution"] == expected["attribution"]
    assert history["refunds_caused"]["count"] == expected["refunds_caused"]
    assert history["refunds_caused"]["by_currency"][0]["amount"] == expected["refunded_caused"]
    assert (history["customer_impacting"], history["apologies_sent"]) == (
        expected["impacting"],
        expected["apologies"],
    )
    assert f'<p class="stat">{expected["per_1000"]}</p>' in page
    metrics = {row[0]: row[1] for row in export if len(row) >= 2}
    assert metrics["per_1000"] == expected["per_1000"]
    assert metrics["orders"] == str(expected["orders"])
    assert metrics["incidents"] == str(expected["incidents"])
    assert metrics["refunds_caused_count"] == str(expected["refunds_caused"])
    assert Decimal(metrics["refunds_caused_amount_EUR"]) == expected["refunded_caused"]
    assert {k: int(metrics[f"closed_{k}"]) for k in ("person", "system", "dismissed")} == expected[
        "attribution"
    ]
    assert (int(metrics["customer_impacting"]), int(metrics["apologies_sent"])) == (
        expected["impacting"],
        expected["apologies"],
    )
    del declined, b


def test_per_incident_and_per_remediation_exports(finance, shop, make_incident):
    order_id = shop.confirmed()
    incident_id = make_incident(order_id=order_id, amount="60.00")
    response = finance.get(reverse("backoffice:finance-incidents-csv"))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    (row,) = rows
    assert (row["incident"], row["type"], row["attribution"], row["order_id"], row["amount_at_risk"]) == (
        str(incident_id),
        "duplicate_charge",
        "open",
        str(order_id),
        "60.00",
    )
    remediations = finance.get(reverse("backoffice:finance-remediations-csv")).content.decode()
    assert remediations.splitlines()[0].startswith("remediation,incident,incident_type,order_id,action")


def test_the_ledger_view_puts_the_clearing_account_next_to_the_providers_net(finance, shop):
    shop.confirmed()
    page = finance.get(reverse("backoffice:finance-ledger")).content.decode()
    clearing = one(
        "SELECT sum(e.amount) FROM payments_ledgerentry e JOIN payments_ledgeraccount a ON a.id = e.account_id"
        " WHERE a.code = 'provider_clearing' AND e.currency = 'EUR'"
    )[0]
    assert clearing == Decimal("60.00")
    assert f'<tr data-currency="EUR"><td>EUR</td><td class="num">{clearing}</td>' in page
    assert "Customer funds" in page


def test_finance_pages_are_for_finance(support):
    for name in ("finance-trends", "finance-ledger", "finance-incidents-csv", "finance-remediations-csv"):
        assert support.get(reverse(f"backoffice:{name}")).status_code in (302, 403)
