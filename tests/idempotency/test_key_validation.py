"""Missing or malformed Idempotency-Key -> 400 with the right code, and no effect."""

import pytest
from django.contrib.auth.models import Group

from idempotency.errors import IdempotencyKeyInvalid, IdempotencyKeyRequired
from idempotency.models import IdempotencyRecord
from idempotency.services import idempotency_key_validate
from tests.idempotency.conftest import post

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.idempotency.urls")]
URL = "/api/v1/test/groups/"


def test_missing_key_is_400_required(api_client):
    response = post(api_client, URL, {"name": "a"}, None)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"
    assert response.json()["error"]["details"] == {"header": "Idempotency-Key"}
    assert not Group.objects.exists()


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="256-chars"),
        pytest.param("clé", id="non-ascii"),
        pytest.param("a\tb", id="tab"),
        pytest.param("a\x7fb", id="DEL"),
        pytest.param("a\x01b", id="control"),
    ],
)
def test_malformed_key_is_400_invalid(api_client, key):
    response = post(api_client, URL, {"name": "a"}, key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_invalid"
    assert not Group.objects.exists()
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.parametrize(
    "key", ["a", "k" * 255, "order 42 / retry #1 ~!@$%^&*()", "550e8400-e29b-41d4-a716-446655440000"]
)
def test_valid_keys_are_accepted(api_client, key):
    response = post(api_client, URL, {"name": "a"}, key)

    assert response.status_code == 201
    assert IdempotencyRecord.objects.get().key == key


def test_validate_table():
    with pytest.raises(IdempotencyKeyRequired):
        idempotency_key_validate(None)
    for bad in ("", "x" * 256, "\n", "é", "a\x00"):
        with pytest.raises(IdempotencyKeyInvalid):
            idempotency_key_validate(bad)
    assert idempotency_key_validate(" ~") == " ~"


def test_key_checked_after_authentication(client):
    # No token: 401 comes first, whatever the key says.
    response = client.post(URL, {"name": "a"}, content_type="application/json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
