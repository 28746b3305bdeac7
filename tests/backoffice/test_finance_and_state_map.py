"""Finance metrics page, CSV export, the state map and search."""

import csv
import io

import pytest
from django.urls import reverse
from django.utils import timezone

from outbox.relay import relay_pass
from payments.selectors import payment_for_order

pytestmark = pytest.mark.django_db


def test_finance_page_shows_metrics_and_a_readable_chart(finance, make_incident):
    make_incident(amount="40.00")
    make_incident(amount="2.50", type="charge_without_order")
    behind = finance.get(reverse("backoffice:finance")).content.decode()
    assert "Figures are" in behind and "behind (2 events pending)" in behind  # read model not fed yet

    relay_pass(budget=5)
    page = finance.get(reverse("backoffice:finance")).content.decode()
    assert "<svg" in page and "<title" in page  # drawn on the server, labelled
    assert "Figures are up to date." in page
    assert "42.50 EUR" in page  # detected in range, from the read model
    assert "Open now: 2 · 42.50 EUR" in page  # from the incidents themselves
    assert 'id="card-impacting"><h2>Customer-impacting</h2><p class="stat">2</p>' in page


def test_bad_dates_fall_back_with_a_message(finance):
    page = finance.get(reverse("backoffice:finance") + "?start=yesterday").content.decode()
    assert "Dates are YYYY-MM-DD" in page


def test_csv_export(finance, make_incident):
    make_incident()
    relay_pass(budget=5)
    today = timezone.now().date().isoformat()
    response = finance.get(reverse("backoffice:finance-csv") + f"?start={today}&end={today}")
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["day", "currency", "orders"]
    day = dict(zip(rows[0], rows[1], strict=True))
    assert (day["day"], day["currency"], day["incidents"], day["money_at_risk"]) == (
        today,
        "EUR",
        "1",
        "40.00",
    )
    assert ["customer_impacting", "1"] in rows


def test_state_map_draws_the_fsm_and_links_to_lists(support, shop):
    shop.failed_checkout()
    page = support.get(reverse("backoffice:states")).content.decode()
    for title in ("Orders", "Payments", "Saga runs"):
        assert f">{title}</h2>" in page
    assert "start_compensating: running → compensating" in page  # edge from the FSM definition
    assert "/backoffice/sagas/?all=1&amp;status=failed" in page
    assert "/backoffice/search/?status=pending" in page


def test_search_by_order_id_email_charge_and_key(support, shop):
    order_id = shop.confirmed()
    lagging = support.get(reverse("backoffice:search") + "?q=C@EXAMPLE.COM").content.decode()
    assert "No orders found." in lagging and "events pending" in lagging  # the index is behind, and says so
    relay_pass(budget=5)
    assert (
        support.get(reverse("backoffice:search") + f"?q={order_id}")["Location"]
        == f"/backoffice/orders/{order_id}/"
    )
    by_email = support.get(reverse("backoffice:search") + "?q=C@EXAMPLE.COM").content.decode()
    assert f"/backoffice/orders/{order_id}/" in by_email
    charge_id = payment_for_order(order_id=order_id).provider_charge_id  # the sandbox's ch_...
    by_charge = support.get(reverse("backoffice:search") + f"?q={charge_id}").content.decode()
    assert f"/backoffice/orders/{order_id}/" in by_charge
    nothing = support.get(reverse("backoffice:search") + "?q=no-such-key").content.decode()
    assert "No orders found." in nothing
    missing = support.get(reverse("backoffice:search") + "?q=999999", follow=True).content.decode()
    assert "No orders found." in missing


def test_case_file_tells_the_story_in_order(support, shop):
    order_id, _ = shop.failed_checkout()
    page = support.get(reverse("backoffice:order", args=[order_id])).content.decode()
    started = page.index("started")
    failed_charge = page.index("charge_payment (forward) attempt 1 → retry")
    assert started < failed_charge
    assert "charge transient: HTTP 500" in page
    support.post(
        reverse("backoffice:order-action", args=[order_id]),
        {"op": "note", "reason": "customer called", "action_key": "n1"},
    )
    page = support.get(reverse("backoffice:order", args=[order_id])).content.decode()
    assert "customer called" in page


def test_unknown_order_is_a_message(support):
    page = support.get(reverse("backoffice:order", args=[424242]), follow=True).content.decode()
    assert "424242" in page and 'class="msg error"' in page
