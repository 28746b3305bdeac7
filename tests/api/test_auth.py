"""Token auth: `Authorization: Token <key>`; no or bad token -> 401 envelope with WWW-Authenticate."""

import pytest

from tests.api.conftest import assert_envelope

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.api.urls")]
URL = "/api/v1/test/echo/"


def test_valid_token_authenticates(api_client):
    response = api_client.get(URL)

    assert response.status_code == 200
    assert response.json() == {"client": "api-client"}


def test_no_token_is_401_envelope(client):
    response = client.get(URL)

    assert_envelope(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("header", ["Token nope", "Token ", "Bearer abc", "Token a b", "Token \u00e9\u00e9"])
def test_bad_token_is_401_envelope(client, token, header):
    response = client.get(URL, headers={"Authorization": header})

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] in {"authentication_failed", "not_authenticated"}


def test_inactive_client_is_401(client, token):
    token.user.is_active = False
    token.user.save()

    response = client.get(URL, headers={"Authorization": f"Token {token.key}"})

    assert_envelope(response, 401, "authentication_failed")
