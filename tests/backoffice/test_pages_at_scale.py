"""What keeps the back-office pages fast at 10M orders (bench/backoffice_pages.py,
docs/benchmarks.md "Back office pages"): capped counts said honestly, probes kept a
few seconds, the finance figures kept a minute, the e-mail search on its index, and
each page's SQL pinned (a new query per page is a decision, not an accident)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backoffice import probes
from backoffice.paging import Page, page_of
from outbox import registry
from outbox.relay import relay_pass
from readmodels import selectors as rm_selectors

pytestmark = pytest.mark.django_db


def _queries(client, url) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(ctx.captured_queries), response.content.decode()


@pytest.fixture
def kept_probes(settings):
    """Production's keeping (the test settings read every probe, and the overview's
    counts, afresh)."""
    settings.BACKOFFICE_PROBE_SECONDS = 5.0
    settings.BACKOFFICE_COUNTS_SECONDS = 5.0
    probes.forget()
    yield
    probes.forget()


def test_a_capped_count_says_more_than_the_cap_and_offers_no_last_page(rf):
    request = rf.get("/x/?status=failed&page=3")
    page = page_of(request, 10_001, cap=10_000)
    assert page.capped and page.total == 10_000 and page.total_text == "10,000+"
    assert page.pages == 200 and page.number == 3
    exact = page_of(rf.get("/x/"), 10_000, cap=10_000)
    assert not exact.capped and exact.total_text == "10000"
    assert Page(1, 50, 7, "").total_text == "7"


def test_the_incident_list_counts_up_to_the_cap(support, make_incident, monkeypatch):
    monkeypatch.setattr("backoffice.views.COUNT_CAP", 3)
    for _ in range(5):
        make_incident()
    page = support.get(reverse("backoffice:incidents")).content.decode()
    assert "of <strong data-total>3+</strong> incidents (counting stops there;" in page
    assert ">Last<" not in page
    # A filter narrow enough is counted exactly again.
    make_incident(type="stock_drift")
    narrow = support.get(reverse("backoffice:incidents") + "?type=stock_drift").content.decode()
    assert "<strong data-total>1</strong> incidents" in narrow


def test_the_selectors_count_at_most_cap_plus_one(make_incident, shop):
    from reconciliation.selectors import incidents_count

    for _ in range(4):
        make_incident()
    assert incidents_count() == 4
    assert incidents_count(cap=2) == 3
    assert incidents_count(cap=10) == 4


def test_probes_are_kept_a_few_seconds_then_read_again(support, kept_probes):
    url = reverse("backoffice:overview")
    support.get(url)  # warm: content types, permissions
    probes.forget()
    cold, _ = _queries(support, url)
    warm, page = _queries(support, url)
    # The consumers' lag is one query for their positions and one statement for every
    # consumer's backlog, however many there are; the count panels are 11 (sagas 2,
    # severity, at risk, last reconciliation, approvals, one per SLA state), kept too
    # (BACKOFFICE_COUNTS_SECONDS).
    assert len(registry.names()) > 1
    assert cold - warm == 1 + 1 + 11
    assert 'id="consumer-lag"' in page
    probes.forget()
    again, _ = _queries(support, url)
    assert again == cold


def test_the_overview_counts_are_kept_five_seconds_and_say_as_of_when(
    support, shop, make_incident, kept_probes, monkeypatch
):
    clock = [1000.0]
    monkeypatch.setattr("backoffice.probes.time.monotonic", lambda: clock[0])
    url = reverse("backoffice:overview")
    make_incident(amount="30.00")
    first = support.get(url).content.decode()
    assert "1 <small>open or acknowledged</small>" in first
    caption = first.split('id="counts-at"', 1)[1].split("</p>", 1)[0]
    assert "Counts as of " in caption and "UTC (read at most every 5 s)" in caption
    as_of = caption.split("Counts as of ", 1)[1][:8]  # hh:mm:ss
    assert first.count(f"as of {as_of}") >= 4  # the count panels each say it too

    # Within the 5 s the counts are the kept ones, as of the same moment, while the
    # lists are read again: a new failed checkout shows among the stuck sagas at once.
    order_id, _ = shop.failed_checkout(email="late@example.com")
    make_incident(amount="40.00")
    clock[0] += 4.9
    kept = support.get(url).content.decode()
    assert "1 <small>open or acknowledged</small>" in kept
    assert "0 <small>failed</small>" in kept
    assert f"Counts as of {as_of}" in kept
    assert f"/backoffice/orders/{order_id}/" in kept  # "Oldest stuck sagas": live

    # Past them the counts are read again.
    clock[0] += 0.2
    fresh = support.get(url).content.decode()
    assert "2 <small>open or acknowledged</small>" in fresh
    assert "1 <small>failed</small>" in fresh


def test_the_waiting_page_keeps_its_counts_five_seconds_and_lists_items_live(
    support, make_incident, kept_probes, monkeypatch
):
    clock = [1000.0]
    monkeypatch.setattr("backoffice.probes.time.monotonic", lambda: clock[0])
    url = reverse("backoffice:waiting")
    first_id = make_incident()
    first = support.get(url).content.decode()
    section = first.split('id="incident_unacknowledged"', 1)[1].split("</section>", 1)[0]
    assert '<small class="muted">1 <span class="as-of">(as of ' in section
    assert f"/backoffice/incidents/{first_id}/" in section
    as_of = first.split('id="counts-at"', 1)[1].split("Counts as of ", 1)[1][:8]

    second_id = make_incident()
    clock[0] += 4.9
    kept = support.get(url).content.decode()
    section = kept.split('id="incident_unacknowledged"', 1)[1].split("</section>", 1)[0]
    assert f'<small class="muted">1 <span class="as-of">(as of {as_of})</span>' in section
    assert f"/backoffice/incidents/{second_id}/" in section  # the items: live

    clock[0] += 0.2
    fresh = support.get(url).content.decode()
    section = fresh.split('id="incident_unacknowledged"', 1)[1].split("</section>", 1)[0]
    assert '<small class="muted">2 <span class="as-of">' in section


def test_the_search_by_email_reads_the_lower_case_index(support, shop):
    shop.order(email="Mixed.Case@Example.com")
    relay_pass(budget=5)
    with CaptureQueriesContext(connection) as ctx:
        kind, rows = rm_selectors.order_search(q="mixed.case@EXAMPLE.com")
    assert kind == "email" and len(rows) == 1
    # readmodels_search_email is on lower(customer_email): the query must say LOWER too
    # (`__iexact` says UPPER, which no index serves: a scan of every order).
    assert 'LOWER("readmodels_ordersearch"."customer_email")' in ctx.captured_queries[0]["sql"]


def test_the_finance_figures_are_kept_and_say_when_they_were_computed(finance, settings, kept_probes):
    settings.BACKOFFICE_FINANCE_FIGURES_SECONDS = 60.0
    from django.core.cache import cache
    from django.utils import timezone

    from backoffice.finance import figures_key
    from backoffice.tasks import finance_figures_refresh

    today = timezone.now().date()
    from datetime import timedelta

    cache.delete(figures_key(today - timedelta(days=29), today))
    url = reverse("backoffice:finance")
    pending, page = _queries(finance, url)  # never computed: queued, "being computed"
    assert 'id="figures-pending"' in page
    finance_figures_refresh(start=(today - timedelta(days=29)).isoformat(), end=today.isoformat())
    cold, page = _queries(finance, url)
    warm, again = _queries(finance, url)
    assert warm <= cold <= pending  # the first view also read what the page keeps a while
    # Pinned: login and role 3, the finance read model's days 1 (the totals are summed
    # from them); the history figures kept (one cache read), "open now" and the lag kept.
    assert warm == FINANCE_KEPT_QUERIES
    assert 'id="figures-at"' in page
    at = page.split('id="figures-at"', 1)[1].split("computed at ", 1)[1][:19]
    assert at in again  # the same figures, as of the same moment
    cache.delete(figures_key(today - timedelta(days=29), today))


FINANCE_KEPT_QUERIES = 4

# Each page's SQL with the probes kept (as in production). Login and role: 3 queries
# (session, user, groups); the rest is the page's own. Change a number only with a
# reason (and the bench re-run).
PAGE_QUERIES = {
    "search": 3,
    # "Needs attention" and the waiting page read the five states' rows in 3 statements,
    # one per owning app (payments: 2 states, orders: 1, reconciliation: 2; sla.BATCHES)
    "overview": 7,  # 3 + stuck sagas 1 + "Needs attention" 3 and 1 escalations; counts kept
    "waiting": 7,  # 3 + the states' items 3 + escalations 1; the per-state counts kept
    "sagas": 5,
    "incidents": 6,
    "search_email": 5,
    # The whole story, one statement per owning app whatever the number of runs
    # (docs/backoffice.md): orders 1 (order, lines, audit log), payments 1 (payment,
    # refunds, provider calls, audit log, ledger, provider webhooks), sagas 1 (runs,
    # steps, staff actions), backoffice 1 (approvals, notes), idempotency, incidents,
    # notifications, reservations, deliveries to the shop 1 each; the person's
    # permissions 1 (the actions offered: core.auth_backend); the customer's other
    # orders 1 (read model).
    "case_file": 14,
}


def test_each_page_runs_its_pinned_number_of_queries(support, shop, make_incident, kept_probes):
    order_id, _ = shop.failed_checkout(email="pinned@example.com")
    make_incident(order_id=order_id)
    relay_pass(budget=5)
    urls = {
        "search": reverse("backoffice:search"),
        "overview": reverse("backoffice:overview"),
        "waiting": reverse("backoffice:waiting"),
        "sagas": reverse("backoffice:sagas"),
        "incidents": reverse("backoffice:incidents"),
        "search_email": reverse("backoffice:search") + "?q=pinned@example.com",
        "case_file": reverse("backoffice:order", args=[order_id]),
    }
    counted = {}
    for name, url in urls.items():
        support.get(url)  # warm: probes kept, content types
        counted[name], _ = _queries(support, url)
    assert counted == PAGE_QUERIES
