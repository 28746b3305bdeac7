"""Concurrent duplicates on real PostgreSQL, each thread on its own connection:
exactly one effect; the others wait and replay, or get 409 if the first takes
longer than IDEMPOTENCY_LOCK_TIMEOUT_MS."""

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings

from idempotency.models import IdempotencyRecord
from tests.fixtures.concurrency import at_once, raised
from tests.idempotency.conftest import make_client, post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.idempotency.urls")]
URL = "/api/v1/test/groups/"


def _fire(client, body, key, n):
    responses = at_once(n, lambda i: post(client, URL, body, key))
    assert raised(responses) == []
    return responses


def test_concurrent_duplicates_wait_and_replay_one_effect():
    client = make_client()

    responses = _fire(client, {"name": "once", "hold_seconds": 0.3}, "concurrent-1", 6)

    assert Group.objects.filter(name="once").count() == 1
    created = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    replayed = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    in_use = [r for r in responses if r.status_code == 409]
    assert len(created) == 1
    assert len(replayed) + len(in_use) == 5
    # With a 2 s wait and a 0.3 s first request, every duplicate waits and replays.
    assert len(replayed) == 5
    assert all(r.content == created[0].content for r in replayed)
    assert IdempotencyRecord.objects.count() == 1


@override_settings(IDEMPOTENCY_LOCK_TIMEOUT_MS=100)
def test_concurrent_duplicates_past_the_wait_get_409_in_use():
    client = make_client()

    responses = _fire(client, {"name": "slow", "hold_seconds": 1.5}, "concurrent-2", 4)

    assert Group.objects.filter(name="slow").count() == 1
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409]
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_key_in_use"
    # The key is now settled: a retry replays.
    retry = post(client, URL, {"name": "slow", "hold_seconds": 1.5}, "concurrent-2")
    assert retry.headers["Idempotent-Replayed"] == "true"


def test_concurrent_different_bodies_same_key_one_effect_rest_422():
    client = make_client()
    responses = at_once(
        4, lambda i: post(client, URL, {"name": f"variant-{i}", "hold_seconds": 0.2}, "concurrent-3")
    )

    assert Group.objects.filter(name__startswith="variant-").count() == 1
    assert sorted(r.status_code for r in responses) == [201, 422, 422, 422]
