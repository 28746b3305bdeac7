"""The throttle when its Redis is down: requests go on (a Redis outage must not stop
ordering), counted in the process's own memory at the same rate, with one warning;
when Redis answers again the shared counters are used again, with one more line."""

import logging

import pytest

from core import api_throttling
from scripts.engines import free_port
from tests.api.conftest import assert_envelope

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]
URL = "/api/v1/test/echo/"


@pytest.fixture
def low_rate(settings):
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {"client": "3/min"}
    settings.REST_FRAMEWORK = rest


@pytest.fixture
def fresh_fallback():
    api_throttling._local_counters.clear()
    api_throttling._SharedCounters.down_since = None
    api_throttling._SharedCounters.retry_at = 0.0
    yield
    api_throttling._local_counters.clear()
    api_throttling._SharedCounters.down_since = None
    api_throttling._SharedCounters.retry_at = 0.0


@pytest.fixture
def redis_down(settings, fresh_fallback):
    """The cache on a port where nothing listens: a real refused connection."""
    working = settings.CACHES
    settings.CACHES = {
        "default": {**working["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"},
    }
    return working


def test_requests_go_on_and_are_counted_locally_while_redis_is_down(api_client, low_rate, redis_down, caplog):
    caplog.set_level(logging.WARNING, logger="core.api_throttling")

    statuses = [api_client.get(URL).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]  # the same rate, counted in this process
    warnings = [r.getMessage() for r in caplog.records if r.name == "core.api_throttling"]
    assert len(warnings) == 1
    assert "throttle counters unavailable" in warnings[0] and "ConnectionError" in warnings[0]


def test_the_429_from_local_counters_keeps_the_envelope(api_client, low_rate, redis_down):
    for _ in range(3):
        api_client.get(URL)

    response = api_client.get(URL)

    error = assert_envelope(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 60
    assert error["details"]["retry_after"] == int(response["Retry-After"])


def test_shared_counters_are_used_again_once_redis_answers(
    api_client, low_rate, redis_down, settings, caplog, monkeypatch
):
    caplog.set_level(logging.WARNING, logger="core.api_throttling")
    assert api_client.get(URL).status_code == 200  # counted locally, Redis down
    settings.CACHES = redis_down  # Redis is back
    monkeypatch.setattr(api_throttling, "FALLBACK_SECONDS", 0.0)
    api_throttling._SharedCounters.retry_at = 0.0

    assert [api_client.get(URL).status_code for _ in range(4)] == [200, 200, 200, 429]

    messages = [r.getMessage() for r in caplog.records if r.name == "core.api_throttling"]
    assert len(messages) == 2 and "available again" in messages[1]
    assert api_throttling._SharedCounters.down_since is None
