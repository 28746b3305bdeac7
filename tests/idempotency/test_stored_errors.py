"""A business error raised after the view wrote something: the writes are undone,
the error is stored under the key, and a replay returns it byte for byte."""

import pytest
from django.contrib.auth.models import Group

from idempotency.models import IdempotencyRecord
from tests.idempotency.conftest import post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.idempotency.urls")]
URL = "/api/v1/test/groups/"


@pytest.mark.parametrize("status", [404, 422])
def test_a_stored_error_undoes_the_views_writes_and_replays(api_client, status):
    first = post(api_client, URL, {"name": "a", "error_after_effect": status}, "key-err")

    assert first.status_code == status
    assert first.json()["error"]["code"] == "refused"
    assert not Group.objects.exists()  # the effect before the error is gone
    record = IdempotencyRecord.objects.get(key="key-err")
    assert record.state == "completed"
    assert record.response_status == status

    again = post(api_client, URL, {"name": "a", "error_after_effect": status}, "key-err")
    assert again.status_code == status
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert not Group.objects.exists()


def test_an_unstored_error_after_the_effect_leaves_nothing_and_frees_the_key(api_client):
    refused = post(api_client, URL, {"name": "a", "error_after_effect": 409}, "key-409")
    assert refused.status_code == 409
    assert not Group.objects.exists()
    assert not IdempotencyRecord.objects.filter(key="key-409").exists()

    fixed = post(api_client, URL, {"name": "a"}, "key-409")
    assert fixed.status_code == 201
    assert Group.objects.count() == 1
