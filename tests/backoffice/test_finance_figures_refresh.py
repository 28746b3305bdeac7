"""The finance page's history figures, stale-while-revalidate (backoffice/finance.py
history_figures): kept figures older than BACKOFFICE_FINANCE_FIGURES_SECONDS are served
with their time while ONE refresh goes to the `bulk` queue (real Redis: the messages are
read off the broker's list); the refresh task stores new figures; a range never computed
is computed inline; beat keeps the default range warm."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backoffice import finance as fin
from backoffice import tasks
from config.celery_app import app

pytestmark = pytest.mark.django_db

QUEUE = "bulk"


def _refreshes_queued(server: redis.Redis, start: date, end: date) -> list[bytes]:
    """The refresh messages for the range waiting on the `bulk` queue."""
    out = []
    for raw in server.lrange(QUEUE, 0, -1):
        headers = json.loads(raw)["headers"]
        if headers["task"] == fin.FIGURES_REFRESH_TASK and start.isoformat() in headers["kwargsrepr"]:
            if end.isoformat() in headers["kwargsrepr"]:
                out.append(raw)
    return out


@pytest.fixture
def kept(settings):
    """Production's interval (the test settings compute at every view); the default
    range's kept figures, refresh lock and queued refreshes are gone before and after."""
    settings.BACKOFFICE_FINANCE_FIGURES_SECONDS = 60.0
    # A range never computed fits the inline budget here (a small shop; tests run on any
    # machine); the tests of the budget below set a small one.
    settings.BACKOFFICE_FINANCE_INLINE_SECONDS = 30.0
    server = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    start, end = fin.default_range()

    def clean() -> None:
        cache.delete_many(
            [fin.figures_key(start, end), fin.figures_key(start, end) + ":refresh", fin.OVER_BUDGET_KEY]
        )
        for raw in _refreshes_queued(server, start, end):
            server.lrem(QUEUE, 0, raw)

    clean()
    yield server, start, end
    clean()


def _age(start: date, end: date, seconds: float, **changes) -> dict:
    """Make the kept figures `seconds` old (what a view sees once the interval passed)."""
    figures = cache.get(fin.figures_key(start, end))
    assert figures is not None
    figures = {**figures, "figures_at": figures["figures_at"] - timedelta(seconds=seconds), **changes}
    cache.set(fin.figures_key(start, end), figures, timeout=3600)
    return figures


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _at(page: str) -> str:
    return page.split('id="figures-at"', 1)[1].split("computed at ", 1)[1][:19]


def test_a_range_never_computed_is_computed_inline_and_kept(finance, kept):
    server, start, end = kept
    page = finance.get(reverse("backoffice:finance")).content.decode()
    figures = cache.get(fin.figures_key(start, end))
    assert figures is not None
    assert _at(page) == _utc(figures["figures_at"])
    assert "data-refreshing" not in page and "being refreshed" not in page
    assert _refreshes_queued(server, start, end) == []  # fresh figures: nothing queued


def test_stale_figures_are_served_with_their_time_and_a_burst_queues_one_refresh(finance, kept):
    server, start, end = kept
    url = reverse("backoffice:finance")
    finance.get(url)  # never computed: computed inline and kept
    with CaptureQueriesContext(connection) as fresh:
        finance.get(url)
    old = _age(
        start,
        end,
        120,
        history={**cache.get(fin.figures_key(start, end))["history"], "customer_impacting": 987654},
    )
    pages = []
    with CaptureQueriesContext(connection) as stale:
        for _ in range(5):
            pages.append(finance.get(url).content.decode())
    for page in pages:
        assert _at(page) == _utc(old["figures_at"])
        assert "data-refreshing" in page and "being refreshed in the background" in page
        assert "987654" in page  # the kept figures, not recomputed inline
    # A view of stale figures runs the SQL of a view of fresh ones: no history read inline.
    assert len(stale.captured_queries) == 5 * len(fresh.captured_queries)
    queued = _refreshes_queued(server, start, end)
    assert len(queued) == 1
    body = json.loads(queued[0])
    assert body["headers"]["expires"] is not None  # a refresh nobody ran in time is dropped


def test_the_refresh_task_stores_new_figures_and_the_page_serves_them(finance, kept):
    _server, start, end = kept
    url = reverse("backoffice:finance")
    finance.get(url)
    old = _age(
        start,
        end,
        120,
        history={**cache.get(fin.figures_key(start, end))["history"], "customer_impacting": 987654},
    )
    assert "being refreshed" in finance.get(url).content.decode()
    tasks.finance_figures_refresh(start=start.isoformat(), end=end.isoformat())  # what the worker runs
    new = cache.get(fin.figures_key(start, end))
    assert new["figures_at"] > old["figures_at"] and new["history"]["customer_impacting"] == 0
    page = finance.get(url).content.decode()
    assert "987654" not in page and "being refreshed" not in page
    assert _at(page) == _utc(new["figures_at"])


def test_redis_down_computes_inline_and_never_fails_the_page(finance, kept, monkeypatch):
    def down(*args, **kwargs):
        raise redis.ConnectionError("down")

    monkeypatch.setattr(cache, "get", down)
    monkeypatch.setattr(cache, "get_many", down)
    monkeypatch.setattr(cache, "add", down)
    response = finance.get(reverse("backoffice:finance"))
    assert response.status_code == 200 and 'id="figures-at"' in response.content.decode()


def test_beat_keeps_the_default_range_warm_on_the_bulk_queue(kept):
    _server, start, end = kept
    entry = django_settings.CELERY_BEAT_SCHEDULE["backoffice-finance-figures"]
    assert entry["task"] == fin.FIGURES_REFRESH_TASK
    assert entry["schedule"] == django_settings.BACKOFFICE_FINANCE_WARM_SECONDS > 0
    assert entry["options"]["expires"] == entry["schedule"]
    assert app.amqp.router.route({}, entry["task"])["queue"].name == QUEUE
    assert cache.get(fin.figures_key(start, end)) is None
    app.tasks[entry["task"]](*entry.get("args", ()), **entry.get("kwargs", {}))
    kept_figures = cache.get(fin.figures_key(start, end))
    assert kept_figures is not None
    assert (timezone.now() - kept_figures["figures_at"]).total_seconds() < 60


# --- A range never computed, over the inline budget ---------------------------------


@pytest.fixture
def slow_range(kept, settings, monkeypatch):
    """A range other than the default one, whose figures take longer than the inline
    budget (0.2 s): the history's first statement sleeps 5 s, as a month at 10M orders
    takes seconds. Yields the server, the range and the count of compute attempts."""
    server, _start, _end = kept
    settings.BACKOFFICE_FINANCE_INLINE_SECONDS = 0.2
    end = timezone.now().date() - timedelta(days=3)
    start = end - timedelta(days=9)
    keys = [fin.figures_key(start, end), fin.figures_key(start, end) + ":refresh"]

    def clean() -> None:
        cache.delete_many(keys)
        for raw in _refreshes_queued(server, start, end):
            server.lrem(QUEUE, 0, raw)

    clean()
    attempts = []
    summary = fin.finance_summary

    def slow_summary(**kwargs):
        attempts.append(kwargs)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(5)")
        return summary(**kwargs)

    monkeypatch.setattr(fin, "finance_summary", slow_summary)
    yield server, start, end, attempts
    clean()


def _timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


def test_a_range_over_the_budget_says_it_is_being_computed_and_queues_one_refresh(
    finance, slow_range, monkeypatch
):
    server, start, end, attempts = slow_range
    url = reverse("backoffice:finance") + f"?start={start}&end={end}"
    started = timezone.now()
    page = finance.get(url).content.decode()
    assert (timezone.now() - started).total_seconds() < 3  # the budget, not the 5 s compute
    assert len(attempts) == 1
    assert 'id="figures-pending"' in page and "being computed in the background" in page
    assert '<meta http-equiv="refresh" content="3">' in page  # reloads itself, no script
    assert 'id="figures-at"' not in page and "data-pending" in page
    assert "Open now:" in page and 'id="finance-days"' in page  # the read model's figures are there
    assert _timeout() == "0"  # the request's own connection never had the budget's timeout
    queued = _refreshes_queued(server, start, end)
    assert len(queued) == 1
    assert json.loads(queued[0])["headers"]["expires"] is not None
    # Its reloads while the refresh is queued: pending at once, no second try, no second task.
    for _ in range(5):
        again = finance.get(url).content.decode()
        assert 'id="figures-pending"' in again
    assert len(attempts) == 1
    assert len(_refreshes_queued(server, start, end)) == 1
    # The worker computes them (without a budget); the next reload shows them.
    monkeypatch.undo()
    tasks.finance_figures_refresh(start=start.isoformat(), end=end.isoformat())  # the queued message's
    shown = finance.get(url).content.decode()
    kept_figures = cache.get(fin.figures_key(start, end))
    assert kept_figures is not None
    assert 'id="figures-pending"' not in shown and "http-equiv" not in shown
    assert _at(shown) == _utc(kept_figures["figures_at"])


def test_a_range_within_the_budget_is_shown_at_once(finance, kept, settings):
    settings.BACKOFFICE_FINANCE_INLINE_SECONDS = 30.0
    server, start, end = kept
    page = finance.get(reverse("backoffice:finance")).content.decode()
    assert 'id="figures-at"' in page and "figures-pending" not in page
    assert _refreshes_queued(server, start, end) == []
    assert _timeout() == "0"  # the budget's timeout ended with its block


@pytest.mark.django_db(transaction=True)
def test_in_autocommit_the_budget_leaves_no_timeout_on_the_connection(finance, slow_range):
    _server, start, end, _attempts = slow_range
    url = reverse("backoffice:finance") + f"?start={start}&end={end}"
    assert 'id="figures-pending"' in finance.get(url).content.decode()
    assert connection.get_autocommit() and _timeout() == "0"


def test_once_a_range_did_not_fit_a_range_as_long_is_not_tried_inline(finance, slow_range):
    server, start, end, attempts = slow_range
    url = reverse("backoffice:finance")
    finance.get(url + f"?start={start}&end={end}")  # 10 days: over the budget
    assert len(attempts) == 1
    longer = (start - timedelta(days=30), start - timedelta(days=10))  # 21 days, never computed
    shorter = (start - timedelta(days=9), start - timedelta(days=6))  # 4 days
    extra = [fin.figures_key(*r) + suffix for r in (longer, shorter) for suffix in ("", ":refresh")]
    try:
        page = finance.get(url + f"?start={longer[0]}&end={longer[1]}").content.decode()
        assert 'id="figures-pending"' in page and len(attempts) == 1  # not even the budget spent
        assert len(_refreshes_queued(server, *longer)) == 1
        page = finance.get(url + f"?start={shorter[0]}&end={shorter[1]}").content.decode()
        assert len(attempts) == 2  # a shorter one may fit: tried (this one did not either)
        assert 'id="figures-pending"' in page
    finally:
        cache.delete_many(extra)
        for r in (longer, shorter):
            for raw in _refreshes_queued(server, *r):
                server.lrem(QUEUE, 0, raw)
