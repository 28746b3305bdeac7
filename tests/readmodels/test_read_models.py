"""The read models are fed only by events, absorb duplicates, are rebuilt from the
source tables, and equal a fresh recomputation (DESIGN §6.10)."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from backoffice.roles import SUPPORT, staff_create
from outbox.models import ConsumerState
from readmodels import services
from readmodels.consumer import FINANCE, SEARCH
from readmodels.models import DriftCheckState, FinanceDay, FinanceFact, OrderSearch
from reconciliation.models import Incident

from .conftest import advance_until_rest, cancel, incidents_story, relay_until_idle

pytestmark = pytest.mark.django_db(transaction=True)


def day_table() -> dict:
    return {
        (r["day"].isoformat(), r["currency"]): {
            k: v for k, v in r.items() if k not in ("id", "day", "currency")
        }
        for r in FinanceDay.objects.values()
    }


def search_table() -> dict:
    return {r["order_id"]: r for r in OrderSearch.objects.values()}


@pytest.fixture
def staff(transactional_db):
    return staff_create(username="sam", role=SUPPORT, password="support-pass-1")


@pytest.fixture
def a_day_of_business(psp, shop, place, saga_policies, staff):
    ok = [place(lines=[("MUG", 1)]) for _ in range(3)]
    declined = place(lines=[("TEE", 1)], payment_method="pm_card_declined")
    for order_id in [*ok, declined]:
        advance_until_rest(order_id)
    cancel(ok[0])  # confirmed -> a refund through the cancellation saga
    advance_until_rest(ok[0], "order_cancellation")
    incidents_story(ok, staff)
    return ok, declined


def test_the_models_are_fed_by_events_and_equal_a_recomputation(a_day_of_business, settings):
    settings.READ_MODELS_DRIFT_GRACE = 0
    ok, declined = a_day_of_business
    assert FinanceDay.objects.count() == 0  # nothing until the relay hands the events over

    relay_until_idle()

    (row,) = FinanceDay.objects.filter(currency="EUR")
    assert (row.orders, row.captures, row.revenue) == (4, 3, Decimal("37.50"))
    assert (row.refunds, row.refunded) == (1, Decimal("12.50"))
    # money at risk as refreshed (12.50, not 10.00); the dismissed one counted apart
    assert (row.incidents, row.money_at_risk, row.dismissed, row.dismissed_at_risk) == (
        3,
        Decimal("37.50"),
        1,
        Decimal("20.00"),
    )
    assert row.resolved == 1
    assert search_table()[declined]["status"] == "cancelled"
    assert search_table()[ok[0]]["payment_status"] == "refunded"
    assert search_table()[ok[1]]["charge_id"].startswith("ch_")
    assert [d.differences for d in services.read_models_check(confirm=False, full=True)] == [[], []]


def test_duplicates_are_absorbed_and_a_rebuild_equals_the_event_fed_model(a_day_of_business, settings):
    settings.READ_MODELS_DRIFT_GRACE = 0
    relay_until_idle()
    fed_days, fed_search = day_table(), search_table()

    # Every event handed over again (a position reset): nothing changes.
    ConsumerState.objects.filter(pk__in=[FINANCE, SEARCH]).update(position=0)
    relay_until_idle()
    assert day_table() == fed_days
    assert search_table() == fed_search

    # Rebuilt from the source tables: the same rows; then the events after the head
    # (none here) and a replay of old ones change nothing either.
    call_command("rebuild_read_models")
    assert list(day_table().values()) == list(fed_days.values())
    assert {k: {**v, "idempotency_key": None} for k, v in search_table().items()} == {
        k: {**v, "idempotency_key": None} for k, v in fed_search.items()
    }
    ConsumerState.objects.filter(pk=FINANCE).update(position=0)
    relay_until_idle()
    assert day_table() == fed_days


def test_drift_opens_an_incident_and_a_rebuild_resolves_it(a_day_of_business, settings):
    settings.READ_MODELS_DRIFT_GRACE = 0
    services.drift_memory_clear()  # what an earlier test's checks saw
    relay_until_idle()
    # Someone edits the read model behind the consumer's back.
    FinanceDay.objects.filter(currency="EUR").update(revenue=Decimal("1.00"))
    OrderSearch.objects.filter(order_id=a_day_of_business[0][1]).update(status="pending")

    services.read_models_check()  # seen once: not yet an incident
    assert not Incident.objects.filter(type="read_model_drift").exists()
    drifts = services.read_models_check()  # seen twice: one incident per model
    assert {d.model: bool(d.differences) for d in drifts} == {FINANCE: True, SEARCH: True}
    incidents = Incident.objects.filter(type="read_model_drift", state="open")
    assert sorted(i.details["read_model"] for i in incidents) == [FINANCE, SEARCH]
    finance = incidents.get(details__read_model=FINANCE)
    assert {"check": "day sums", "field": "revenue", "expected": "37.50", "read_model": "1.00"}.items() <= (
        finance.details["first"][0].items()
    )

    call_command("rebuild_read_models")
    services.read_models_check()
    assert not Incident.objects.filter(type="read_model_drift", state="open").exists()
    assert set(
        Incident.objects.filter(type="read_model_drift").values_list("resolution_kind", flat=True)
    ) == {"auto"}


def test_finance_facts_have_natural_keys(a_day_of_business):
    relay_until_idle()
    keys = set(FinanceFact.objects.values_list("key", flat=True))
    ok, declined = a_day_of_business
    assert {f"order:{o}" for o in [*ok, declined]} <= keys
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM readmodels_financefact WHERE key LIKE 'incident:%%:closed'")
        assert cursor.fetchone()[0] == 2  # one dismissed, one resolved


def _incident_open(model: str) -> bool:
    return Incident.objects.filter(type="read_model_drift", state="open", details__read_model=model).exists()


def test_the_check_is_bounded_and_finds_old_drift_within_its_rotation(a_day_of_business, settings):
    """A month later, the day of business is history: a check compares the last
    READ_MODELS_CHECK_RECENT_DAYS days (empty), the next READ_MODELS_CHECK_OLD_DAYS
    older days and READ_MODELS_CHECK_OLD_ORDERS older order ids (cursors going round),
    and what differed last time. Drift planted where the cursors have just passed is
    found when they come round, and counts at the check after: within
    ceil(old days / OLD_DAYS) + 1 checks (finance), ceil(order ids / OLD_ORDERS) + 1
    (search), as docs/consistency.md says — and, planted just behind the cursors, at
    exactly that check."""
    settings.READ_MODELS_DRIFT_GRACE = 0
    settings.READ_MODELS_CHECK_RECENT_DAYS, settings.READ_MODELS_CHECK_OLD_DAYS = 2, 7
    settings.READ_MODELS_CHECK_OLD_ORDERS = 2
    services.drift_memory_clear()
    relay_until_idle()
    later = timezone.now() + timedelta(days=30)
    ok, declined = a_day_of_business
    ids = sorted([*ok, declined])
    old_days = 29  # today .. the day before the recent window (the last 2 days of `later`)
    finance_bound = math.ceil(old_days / 7) + 1
    search_bound = math.ceil((ids[-1] - ids[0] + 1) / 2) + 1

    # A clean check moves the cursors past today's facts and the first two order ids.
    finance, search = services.read_models_check(now=later)
    assert (finance.differences, search.differences) == ([], [])
    assert search.compared <= 2  # two order ids of history per check, not every order
    today = timezone.now().date()
    assert finance.scope["days"][0] == [today.isoformat(), (today + timedelta(days=7)).isoformat()]
    # The worst case: drift in what the cursors have just passed.
    cursor = int(DriftCheckState.objects.get(model=SEARCH).cursor)
    victim = max(i for i in ids if i < cursor)

    FinanceDay.objects.filter(currency="EUR").update(revenue=Decimal("1.00"))
    OrderSearch.objects.filter(order_id=victim).update(status="pending")

    runs = {FINANCE: None, SEARCH: None}
    for run in range(1, max(finance_bound, search_bound) + 1):
        services.read_models_check(now=later)
        relay_until_idle()  # the events worker applies the incident's event meanwhile
        for model in runs:
            if runs[model] is None and _incident_open(model):
                runs[model] = run
    assert runs == {FINANCE: finance_bound, SEARCH: search_bound}  # the worst case, exactly
    finance_incident = Incident.objects.get(type="read_model_drift", details__read_model=FINANCE)
    assert finance_incident.details["checked"]["days"]  # what the check compared

    # The drifting buckets stay under watch: fixed, the next check resolves the incidents.
    call_command("rebuild_read_models")
    services.read_models_check(now=later)
    assert not Incident.objects.filter(type="read_model_drift", state="open").exists()


def test_a_full_check_compares_everything(a_day_of_business, settings):
    settings.READ_MODELS_DRIFT_GRACE = 0
    relay_until_idle()
    later = timezone.now() + timedelta(days=30)
    settings.READ_MODELS_CHECK_OLD_ORDERS = 1
    OrderSearch.objects.filter(order_id=a_day_of_business[1]).update(status="pending")
    bounded = services.read_models_check(now=later, confirm=False)  # nothing recent, one slice
    full = services.read_models_check(now=later, confirm=False, full=True)
    assert full[1].compared == len(a_day_of_business[0]) + 1 > bounded[1].compared
    assert [d["order_id"] for d in full[1].differences] == [a_day_of_business[1]]
