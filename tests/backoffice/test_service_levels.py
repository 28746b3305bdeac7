"""The finance page's consistency service levels: each line recomputed here from the
source rows, with its target and whether it is met (docs/operations.md)."""

import csv
import io
import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from reconciliation.models import Incident

pytestmark = pytest.mark.django_db


def _levels(page: str) -> dict[str, list[str]]:
    """slo key -> the row's cells, as text."""
    rows = re.findall(r'<tr data-slo="([^"]+)">(.*?)</tr>', page, flags=re.S)
    return {
        key: [
            unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for key, row in rows
    }


def test_each_service_level_is_measured_against_its_target(finance, shop, make_incident, settings):
    settings.SLO = {**settings.SLO, "ORDER_CONFIRM_SECONDS": 60.0, "SAGAS_STUCK_PER_1000": 1.0}
    # given: three confirmed orders, one stuck checkout (the provider failed it), and two
    # incidents needing a refund, one of them detected two hours ago
    for _ in range(3):
        shop.confirmed()
    shop.failed_checkout()
    make_incident(amount="40.00")
    old = make_incident(type="charge_without_order", amount="2.50")
    Incident.objects.filter(pk=old).update(detected_at=timezone.now() - timedelta(hours=2))

    levels = _levels(finance.get(reverse("backoffice:finance")).content.decode())

    confirmed = levels["order_confirm_seconds"]
    assert confirmed[2] == "≤ 60 s" and confirmed[3] == "met"
    assert confirmed[4] == "3 of 3 confirmed within 60 s"
    stuck = levels["sagas_stuck_per_1000"]  # 1 stuck run over 4 orders = 250 per 1,000
    assert stuck[1] == "250.00" and stuck[3] == "missed"
    money = levels["money_at_risk_max_age_seconds"]
    assert money[1] == "2.50 EUR" and money[3] == "missed"
    assert money[4].startswith("1 live incident(s)")
    refunds = levels["refund_incidents_per_1000"]  # both are in the last 30 days
    assert refunds[1] == "500.00" and refunds[3] == "missed" and refunds[4] == "2 incident(s) over 4 order(s)"


def test_an_empty_range_has_nothing_to_measure(finance):
    levels = _levels(finance.get(reverse("backoffice:finance")).content.decode())
    assert levels["order_confirm_seconds"][3] == "no data"
    assert levels["money_at_risk_max_age_seconds"][1:4] == ["none", "none", "met"]


def test_the_csv_carries_the_service_levels(finance, make_incident):
    make_incident()
    rows = list(csv.reader(io.StringIO(finance.get(reverse("backoffice:finance-csv")).content.decode())))
    assert ["slo_refund_incidents_per_1000", "—", "≤ 1.0", ""] in rows
    assert ["slo_money_at_risk_max_age_seconds", "none", "none", "met"] in rows
