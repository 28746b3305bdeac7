"""POST/GET/DELETE /api/v1/webhook-endpoints/: the secret once, validation, scoping."""

from __future__ import annotations

import pytest

from .conftest import ENDPOINTS_URL, register

pytestmark = pytest.mark.django_db


def test_register_shows_the_secret_once_and_replays_the_same_answer(shop_a):
    created = register(shop_a, "https://shop.example.com/hooks", ["order.confirmed"], key="k1")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 30
    assert (body["url"], body["event_types"], body["status"]) == (
        "https://shop.example.com/hooks",
        ["order.confirmed"],
        "enabled",
    )
    again = register(shop_a, "https://shop.example.com/hooks", ["order.confirmed"], key="k1")
    assert again.headers["Idempotent-Replayed"] == "true" and again.content == created.content
    listed = shop_a.get(ENDPOINTS_URL).json()["results"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in shop_a.get(f"{ENDPOINTS_URL}{body['id']}/").json()


def test_a_post_without_idempotency_key_is_refused(shop_a):
    response = shop_a.post(ENDPOINTS_URL, {"url": "https://x.example/", "event_types": ["*"]}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("ftp://shop.example.com/hooks", "url"),
        ("file:///etc/passwd", "url"),
        ("javascript:alert(1)", "url"),
        ("https://user:pw@shop.example.com/", "url"),
        ("https://", "url"),
        ("https://shop.example.com/" + "x" * 2100, "url"),
    ],
)
def test_bad_urls_get_a_clear_error(shop_a, url, field):
    response = register(shop_a, url)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] in ("invalid_url", "validation_error")
    assert field in error["details"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_addresses_are_refused_in_production_settings(shop_a, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    response = register(shop_a, url)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid_url"


def test_a_public_address_is_accepted_in_production_settings(shop_a, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    assert register(shop_a, "https://93.184.215.14/hooks").status_code == 201


def test_production_settings_refuse_private_urls_by_default():
    from config.settings import base

    assert "WEBHOOK_ALLOW_PRIVATE_URLS" in open(base.BASE_DIR / "config/settings/production.py").read()


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://shop.example.com/", "event_types": ["order.exploded"]},
        {"url": "https://shop.example.com/", "event_types": []},
        {"url": "https://shop.example.com/", "event_types": "order.confirmed"},
        {"url": "https://shop.example.com/"},
        {"url": 42, "event_types": ["*"]},
        {"url": "https://shop.example.com/", "event_types": ["*"], "secret": "whsec_mine"},
    ],
)
def test_bad_bodies_name_the_field(shop_a, body):
    from tests.api_orders.conftest import new_key

    response = shop_a.post(ENDPOINTS_URL, body, format="json", headers={"Idempotency-Key": new_key()})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] in ("validation_error", "invalid_url")
    assert set(error["details"]) & {"url", "event_types", "secret"}


def test_another_clients_endpoint_is_not_found_and_cannot_be_deleted(shop_a, shop_b):
    endpoint_id = register(shop_a, "https://shop.example.com/hooks").json()["id"]
    assert shop_b.get(f"{ENDPOINTS_URL}{endpoint_id}/").status_code == 404
    assert shop_b.delete(f"{ENDPOINTS_URL}{endpoint_id}/").status_code == 404
    assert shop_b.get(ENDPOINTS_URL).json()["results"] == []
    assert shop_a.get(f"{ENDPOINTS_URL}{endpoint_id}/").status_code == 200


def test_delete_is_idempotent_and_hides_the_endpoint(shop_a):
    endpoint_id = register(shop_a, "https://shop.example.com/hooks").json()["id"]
    assert shop_a.delete(f"{ENDPOINTS_URL}{endpoint_id}/").status_code == 204
    assert shop_a.delete(f"{ENDPOINTS_URL}{endpoint_id}/").status_code == 204
    assert shop_a.get(f"{ENDPOINTS_URL}{endpoint_id}/").status_code == 404
    assert shop_a.get(ENDPOINTS_URL).json()["results"] == []
    assert shop_a.delete(f"{ENDPOINTS_URL}999999999999/").status_code == 404


def test_too_many_endpoints_is_a_conflict(shop_a, settings):
    settings.WEBHOOK_MAX_ENDPOINTS = 2
    for _ in range(2):
        assert register(shop_a, "https://shop.example.com/hooks").status_code == 201
    response = register(shop_a, "https://shop.example.com/hooks")
    assert response.status_code == 409 and response.json()["error"]["code"] == "too_many_endpoints"
