"""The finance page's history figures, stale-while-revalidate (backoffice/finance.py
history_figures): kept figures older than BACKOFFICE_FINANCE_FIGURES_SECONDS are served
with their time while ONE refresh goes to the `bulk` queue (real Redis: the messages are
read off the broker's list); the refresh task stores new figures; a range never computed
is never computed while someone waits: the page says so, queues one refresh and reloads
itself until the figures are kept; beat keeps the default range warm."""

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
    server = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    start, end = fin.default_range()

    def clean() -> None:
        cache.delete_many([fin.figures_key(start, end), fin.figures_key(start, end) + ":refresh"])
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


def _compute(start: date, end: date) -> None:
    """What the worker does with a queued refresh (the message's own arguments)."""
    tasks.finance_figures_refresh(start=start.isoformat(), end=end.isoformat())
    cache.delete(fin.figures_key(start, end) + ":refresh")  # the lock's minute is over


def test_stale_figures_are_served_with_their_time_and_a_burst_queues_one_refresh(finance, kept):
    server, start, end = kept
    url = reverse("backoffice:finance")
    _compute(start, end)
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
    _compute(start, end)
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


# --- A range never computed ------------------------------------------------------------


@pytest.fixture
def new_range(kept, monkeypatch):
    """A range other than the default one, nothing kept for it; counts the computes
    (finance_summary: the history's reads). Yields the server, the range and the count."""
    server, _start, _end = kept
    end = timezone.now().date() - timedelta(days=3)
    start = end - timedelta(days=9)
    keys = [fin.figures_key(start, end), fin.figures_key(start, end) + ":refresh"]

    def clean() -> None:
        cache.delete_many(keys)
        for raw in _refreshes_queued(server, start, end):
            server.lrem(QUEUE, 0, raw)

    clean()
    computes = []
    summary = fin.finance_summary

    def counted(**kwargs):
        computes.append(kwargs)
        return summary(**kwargs)

    monkeypatch.setattr(fin, "finance_summary", counted)
    yield server, start, end, computes
    clean()


def test_a_range_never_computed_says_it_is_being_computed_and_queues_one_refresh(finance, new_range):
    server, start, end, computes = new_range
    url = reverse("backoffice:finance") + f"?start={start}&end={end}"
    with CaptureQueriesContext(connection) as first:
        page = finance.get(url).content.decode()
    assert computes == []  # nothing computed while the viewer waits
    assert 'id="figures-pending"' in page and "being computed in the background" in page
    assert '<meta http-equiv="refresh" content="3">' in page  # reloads itself, no script
    assert 'id="figures-at"' not in page and "data-pending" in page
    assert "Open now:" in page and 'id="finance-days"' in page  # the read model's figures are there
    queued = _refreshes_queued(server, start, end)
    assert len(queued) == 1
    assert json.loads(queued[0])["headers"]["expires"] is not None
    # Its reloads while the refresh is queued: pending, no second task, the same SQL.
    for _ in range(5):
        with CaptureQueriesContext(connection) as again:
            assert 'id="figures-pending"' in finance.get(url).content.decode()
        assert len(again.captured_queries) == len(first.captured_queries)
    assert computes == [] and len(_refreshes_queued(server, start, end)) == 1
    # The worker computes them; the next reload shows them, no longer reloading itself.
    tasks.finance_figures_refresh(start=start.isoformat(), end=end.isoformat())  # the queued message's
    assert len(computes) == 1
    shown = finance.get(url).content.decode()
    kept_figures = cache.get(fin.figures_key(start, end))
    assert kept_figures is not None
    assert 'id="figures-pending"' not in shown and "http-equiv" not in shown
    assert _at(shown) == _utc(kept_figures["figures_at"])


def test_a_pending_range_queues_again_once_its_lock_expired(finance, new_range):
    """No worker took the refresh within the lock's interval (the message expires then
    too): the next reload queues another one, never more than one per interval."""
    server, start, end, computes = new_range
    url = reverse("backoffice:finance") + f"?start={start}&end={end}"
    finance.get(url)
    cache.delete(fin.figures_key(start, end) + ":refresh")  # the interval is over
    assert 'id="figures-pending"' in finance.get(url).content.decode()
    assert len(_refreshes_queued(server, start, end)) == 2 and computes == []
