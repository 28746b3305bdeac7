"""Validation errors (400) and server errors (5xx) are not stored, and leave no effect."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from idempotency.models import IdempotencyRecord
from tests.idempotency.conftest import post

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.idempotency.urls")]
URL = "/api/v1/test/groups/"


def test_validation_error_is_not_stored_and_key_can_be_reused(api_client):
    bad = post(api_client, URL, {"name": ""}, "fix-me")

    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"
    assert "name" in bad.json()["error"]["details"]
    assert not IdempotencyRecord.objects.filter(key="fix-me").exists()

    fixed = post(api_client, URL, {"name": "fixed"}, "fix-me")

    assert fixed.status_code == 201
    assert "Idempotent-Replayed" not in fixed.headers
    assert list(Group.objects.values_list("name", flat=True)) == ["fixed"]


def test_malformed_json_is_not_stored(api_client):
    response = api_client.post(
        URL, data="{not json", content_type="application/json", headers={"Idempotency-Key": "k"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert not IdempotencyRecord.objects.exists()


def test_returned_5xx_is_not_stored_and_its_effect_is_rolled_back(api_client):
    failed = post(api_client, URL, {"name": "a", "answer_status": 503}, "k5")

    assert failed.status_code == 503
    assert not IdempotencyRecord.objects.exists()
    assert not Group.objects.exists()

    retry = post(api_client, URL, {"name": "a", "answer_status": 201}, "k5")
    assert retry.status_code == 201
    assert Group.objects.count() == 1


def test_unexpected_exception_is_500_envelope_and_leaves_neither_record_nor_effect(api_client):
    token = api_client.token
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {token}")

    response = client.post(
        URL,
        data={"name": "doomed", "fail_after_effect": True},
        content_type="application/json",
        headers={"Idempotency-Key": "k500"},
    )

    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "server_error", "message": "Internal server error.", "details": {}}
    }
    assert not IdempotencyRecord.objects.exists()
    assert not Group.objects.filter(name="doomed").exists()
