"""How long a task's message waited (publish -> start) is on every line the task logs
and in /metrics: the broker hop of bench/checkout_latency.py's breakdown."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from core import logs, metrics


@pytest.fixture(autouse=True)
def _fresh_context():
    logs.clear()
    yield
    logs.clear()


def _task(**headers: object) -> SimpleNamespace:
    return SimpleNamespace(name="sagas.advance", request=SimpleNamespace(**headers))


def test_a_task_binds_how_long_its_message_waited_and_when_it_was_sent():
    sent_at = time.time() - 0.25
    task = _task(**{logs.SENT_AT_HEADER: sent_at})

    logs.task_context_bind(task, "task-1")

    bound = logs.bound()
    assert bound["task_sent_at"] == sent_at
    assert 250 <= bound["task_queued_ms"] < 250 + 5_000
    assert bound["task_id"] == "task-1"


def test_a_message_without_a_publish_time_binds_no_wait():
    logs.task_context_bind(_task(), "task-2")

    bound = logs.bound()
    assert "task_queued_ms" not in bound and "task_sent_at" not in bound
    assert logs.task_queued_seconds(_task(**{logs.SENT_AT_HEADER: "not a time"})) is None


def test_the_wait_is_observed_per_task_name():
    def sample(suffix: str) -> float:
        value = REGISTRY.get_sample_value(
            f"concord_celery_task_queued_seconds{suffix}", {"task": "tests.wait"}
        )
        return value or 0.0

    count, total = sample("_count"), sample("_sum")

    metrics.celery_task_started("task-3", "tests.wait", 0.04)
    metrics.celery_task_finished("task-3", "tests.wait", "SUCCESS")

    assert sample("_count") == count + 1
    assert sample("_sum") == pytest.approx(total + 0.04)
