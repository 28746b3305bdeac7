"""Same key + same request -> the stored response, byte for byte (DESIGN §4, §6.5)."""

import pytest
from django.contrib.auth.models import Group

from idempotency.models import IdempotencyRecord
from tests.idempotency.conftest import post

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.idempotency.urls")]
URL = "/api/v1/test/groups/"


def test_first_request_creates_and_is_not_marked_replayed(api_client):
    response = post(api_client, URL, {"name": "a"}, "key-1")

    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    record = IdempotencyRecord.objects.get(key="key-1")
    assert record.state == "completed"
    assert record.client_id == api_client.user.pk
    assert bytes(record.response_body) == response.content
    assert record.response_headers == {
        "Content-Type": "application/json",
        "Location": response.headers["Location"],
    }


def test_replay_returns_identical_bytes_status_and_headers(api_client):
    first = post(api_client, URL, {"name": "a"}, "key-1")
    second = post(api_client, URL, {"name": "a"}, "key-1")

    assert second.status_code == first.status_code == 201
    # The body carries a nonce that differs on every execution: equal bytes prove a replay.
    assert second.content == first.content
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Content-Type"] == first.headers["Content-Type"]
    assert second.headers["Location"] == first.headers["Location"]
    assert Group.objects.count() == 1


def test_canonical_body_key_order_and_whitespace_do_not_matter(api_client):
    first = api_client.post(
        URL,
        data='{"name": "a", "hold_seconds": 0}',
        content_type="application/json",
        headers={"Idempotency-Key": "k"},
    )
    second = api_client.post(
        URL,
        data='{\n  "hold_seconds":0,"name":"a"}',
        content_type="application/json",
        headers={"Idempotency-Key": "k"},
    )

    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.content == first.content


def test_different_body_same_key_is_422(api_client):
    post(api_client, URL, {"name": "a"}, "key-1")

    response = post(api_client, URL, {"name": "b"}, "key-1")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Group.objects.count() == 1


def test_different_path_same_key_is_422(api_client):
    group = Group.objects.create(name="existing")
    post(api_client, URL, {"name": "a"}, "key-1")

    response = post(api_client, f"/api/v1/test/groups/{group.pk}/rename/", {"name": "a"}, "key-1")

    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "idempotency_key_reused"
    assert body["details"]["original_path"] == URL
    assert Group.objects.get(pk=group.pk).name == "existing"


def test_keys_are_scoped_per_client(client_factory):
    client_a, client_b = client_factory(), client_factory()

    a = post(client_a, URL, {"name": "from-a"}, "shared-key")
    b = post(client_b, URL, {"name": "from-b"}, "shared-key")

    assert a.status_code == b.status_code == 201
    assert "Idempotent-Replayed" not in b.headers
    assert set(Group.objects.values_list("name", flat=True)) == {"from-a", "from-b"}
    assert IdempotencyRecord.objects.filter(key="shared-key").count() == 2


def test_stored_error_outcome_is_replayed(api_client):
    # A 404 is a definitive answer for this request: stored, replayed, no effect.
    first = post(api_client, "/api/v1/test/groups/999999/rename/", {"name": "x"}, "k404")
    second = post(api_client, "/api/v1/test/groups/999999/rename/", {"name": "x"}, "k404")

    assert first.status_code == 404
    assert first.json()["error"]["code"] == "not_found"
    assert second.status_code == 404
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.content == first.content


def test_expired_record_frees_the_key(api_client):
    from datetime import timedelta

    from django.utils import timezone

    first = post(api_client, URL, {"name": "a"}, "old-key")
    IdempotencyRecord.objects.filter(key="old-key").update(expires_at=timezone.now() - timedelta(seconds=1))

    again = post(api_client, URL, {"name": "b"}, "old-key")

    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again.headers
    assert again.content != first.content
    assert IdempotencyRecord.objects.get(key="old-key").expires_at > timezone.now()


def test_viewset_action_is_idempotent(api_client):
    group = Group.objects.create(name="before")
    url = f"/api/v1/test/vs/groups/{group.pk}/rename/"

    first = post(api_client, url, {"name": "after"}, "vs-key")
    Group.objects.filter(pk=group.pk).update(name="changed-meanwhile")
    second = post(api_client, url, {"name": "after"}, "vs-key")

    assert first.status_code == second.status_code == 202
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.content == first.content
    assert Group.objects.get(pk=group.pk).name == "changed-meanwhile"  # not renamed twice
