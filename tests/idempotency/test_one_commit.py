"""The record and the effect are one transaction: one commit per accepted request,
and a failure after the effect leaves neither."""

from unittest import mock

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client

from idempotency.models import IdempotencyRecord
from tests.idempotency.conftest import make_client, post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.idempotency.urls")]
URL = "/api/v1/test/groups/"


def test_accepted_request_is_exactly_one_commit():
    client = make_client()

    with mock.patch.object(connection, "commit", wraps=connection.commit) as commit:
        response = post(client, URL, {"name": "one-commit"}, "c1")

    assert response.status_code == 201
    assert commit.call_count == 1
    assert Group.objects.filter(name="one-commit").exists()
    assert IdempotencyRecord.objects.get(key="c1").state == "completed"


def test_replay_commits_nothing_new():
    client = make_client()
    post(client, URL, {"name": "r"}, "c2")

    with mock.patch.object(connection, "commit", wraps=connection.commit):
        replay = post(client, URL, {"name": "r"}, "c2")

    assert replay.headers["Idempotent-Replayed"] == "true"
    assert Group.objects.filter(name="r").count() == 1


def test_failure_after_the_effect_leaves_neither_record_nor_effect():
    user_client = make_client()
    token = user_client.token
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {token}")

    response = client.post(
        URL,
        data={"name": "half-done", "fail_after_effect": True},
        content_type="application/json",
        headers={"Idempotency-Key": "c3"},
    )

    assert response.status_code == 500
    assert not Group.objects.filter(name="half-done").exists()
    assert not IdempotencyRecord.objects.filter(key="c3").exists()
