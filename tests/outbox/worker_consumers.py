"""A consumer for the failure tests, registered on import in worker subprocesses
(`-I tests.outbox.worker_consumers` with OUTBOX_TEST_CONSUMER=1); the test process
uses the helpers below.

Its effect is a row in `test_outbox_applied` (no unique key, on purpose: a second
application of an event would show as a second row), written in the relay's
transaction like any consumer's. Each handler call also bumps a Redis counter
outside the transaction, so a test can see calls that were rolled back.

Behaviour from the environment / the payload:
- OUTBOX_TEST_SLOW_MS: sleep this long per event (a relay to kill mid-batch);
- payload {"boom": n}: raise on the first n calls for that event (a consumer bug
  that heals).
"""

from __future__ import annotations

import functools
import os
import time

import redis
from django.conf import settings
from django.db import connection

from outbox import registry
from outbox.dto import EventDTO

NAME = "test-applied-log"
TABLE = "test_outbox_applied"


@functools.cache
def client() -> redis.Redis:
    return redis.Redis.from_url(os.environ.get("OUTBOX_TEST_REDIS_URL") or settings.CELERY_BROKER_URL)


def calls_key() -> str:
    return f"outbox-test:{connection.settings_dict['NAME']}:calls"


def handle(event: EventDTO) -> None:
    calls = client().hincrby(calls_key(), event.id, 1)
    slow = int(os.environ.get("OUTBOX_TEST_SLOW_MS") or 0)
    if slow:
        time.sleep(slow / 1000)
    if calls <= int(event.payload.get("boom") or 0):
        raise RuntimeError(f"boom {calls} on {event.id}")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (event_id, sequence, aggregate_id, applied_at) VALUES (%s, %s, %s, clock_timestamp())",
            [event.id, event.sequence, event.aggregate_id],
        )


def create_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, event_id uuid NOT NULL, "
            "sequence bigint NOT NULL, aggregate_id text NOT NULL, applied_at timestamptz NOT NULL)"
        )
        cursor.execute(f"TRUNCATE {TABLE}")
    client().delete(calls_key())


def drop_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
    client().delete(calls_key())


def applied() -> list[tuple[str, int, str]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT event_id::text, sequence, aggregate_id FROM {TABLE} ORDER BY id")
        return list(cursor.fetchall())


def calls() -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client().hgetall(calls_key()).items()}


CONSUMER = registry.Consumer(NAME, handle, batch_size=200)
if os.environ.get("OUTBOX_TEST_CONSUMER") == "1":  # set for worker processes by the tests
    registry.register(CONSUMER, replace=True)
