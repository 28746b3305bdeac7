"""The error envelope for everything that can go wrong under /api/."""

import pytest
from django.test import Client, override_settings

from tests.api.conftest import assert_envelope

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]
URL = "/api/v1/test/echo/"
VALID = {"email": "a@example.com", "lines": [{"sku": "SKU-1", "quantity": 2}]}


def test_unknown_api_path_is_404_envelope(api_client):
    assert_envelope(api_client.get("/api/v1/nope"), 404, "not_found")
    assert_envelope(api_client.post("/api/v1/nope/", {}, format="json"), 404, "not_found")
    assert_envelope(api_client.get("/api/v2/orders/"), 404, "not_found")


@override_settings(DEBUG=True)
def test_unknown_api_path_is_envelope_even_in_debug(api_client):
    assert_envelope(api_client.get("/api/v1/nope/"), 404, "not_found")


def test_unknown_page_outside_api_keeps_html_404(client):
    response = client.get("/definitely-not-here/")

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_wrong_method_is_405_envelope(api_client):
    response = api_client.delete(URL)

    assert_envelope(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_wrong_content_type_is_415_envelope(api_client):
    response = api_client.post(
        URL, data="email=a@example.com", content_type="application/x-www-form-urlencoded"
    )

    assert_envelope(response, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "raw",
    ['{"email": ', "not json", '{"a": NaN}', "\u00ff\u00fe", '{"n": ' + "9" * 5000 + "}"],
    ids=["truncated", "text", "nan", "bad-bytes", "huge-int"],
)
def test_malformed_json_is_400_malformed_request(api_client, raw):
    response = api_client.post(URL, data=raw.encode("latin-1"), content_type="application/json")

    assert_envelope(response, 400, "malformed_request")


def test_validation_details_name_the_field(api_client):
    response = api_client.post(
        URL,
        {"email": "not-an-email", "lines": [{"sku": "A", "quantity": 0}, {"sku": "B", "quantity": 1}]},
        format="json",
    )

    error = assert_envelope(response, 400, "validation_error")
    assert "email" in error["details"]
    # List items are keyed by their index: the client learns which line failed.
    assert set(error["details"]["lines"]) == {"0"}
    assert set(error["details"]["lines"]["0"]) == {"quantity"}


def test_non_object_body_is_a_validation_error_not_500(api_client):
    response = api_client.post(URL, [1, 2, 3], format="json")

    error = assert_envelope(response, 400, "validation_error")
    assert "non_field_errors" in error["details"]


def test_concord_error_keeps_its_code_status_and_details(api_client):
    response = api_client.post("/api/v1/test/conflict/", {}, format="json")

    error = assert_envelope(response, 409, "conflict")
    assert error["details"] == {"status": "confirmed"}


def test_unexpected_error_is_500_envelope(token):
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {token.key}")

    response = client.get("/api/v1/test/broken/")

    error = assert_envelope(response, 500, "server_error")
    assert "a bug" not in response.content.decode()  # no internals leak
    assert error["details"] == {}


def test_valid_request_passes(api_client):
    response = api_client.post(URL, VALID, format="json")

    assert response.status_code == 201
    assert response.json() == VALID
