"""Body-size cap (413) and per-client throttling (429 with Retry-After)."""

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from apitokens.services import api_token_issue
from tests.api.conftest import assert_envelope

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]
URL = "/api/v1/test/echo/"


def test_oversized_body_is_413_envelope(api_client, settings):
    settings.API_MAX_BODY_BYTES = 1024
    body = {"email": "a@example.com", "lines": [{"sku": "S" * 60, "quantity": 1}] * 40}

    response = api_client.post(URL, body, format="json")

    error = assert_envelope(response, 413, "request_too_large")
    assert "1024" in error["message"]


def test_body_at_the_cap_is_parsed(api_client, settings):
    settings.API_MAX_BODY_BYTES = 1024
    response = api_client.post(URL, {"email": "a@example.com", "lines": []}, format="json")

    assert response.status_code == 201


def test_default_cap_is_generous_for_100_lines(api_client):
    body = {
        "email": "a@example.com",
        "lines": [{"sku": f"SKU-{i:05d}", "quantity": 1000} for i in range(100)],
    }

    assert api_client.post(URL, body, format="json").status_code == 201


@pytest.fixture
def low_rate(settings):
    rest = dict(settings.REST_FRAMEWORK)
    rest["DEFAULT_THROTTLE_RATES"] = {"client": "3/min"}
    settings.REST_FRAMEWORK = rest


def test_throttled_client_gets_429_with_retry_after(api_client, low_rate):
    for _ in range(3):
        assert api_client.get(URL).status_code == 200

    response = api_client.get(URL)

    error = assert_envelope(response, 429, "throttled")
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 60
    assert error["details"] == {"retry_after": retry_after}


def test_throttling_is_per_client(api_client, low_rate):
    for _ in range(4):
        api_client.get(URL)
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Token {api_token_issue(user=User.objects.create_user('b'))}")

    assert api_client.get(URL).status_code == 429
    assert other.get(URL).status_code == 200


def test_unauthenticated_requests_get_401_not_429(client, low_rate):
    for _ in range(5):
        assert client.get(URL).status_code == 401
