"""Fixtures for the orders/products API: a small catalog and API clients."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from rest_framework.test import APIClient

from apitokens.services import api_token_issue
from tests.inventory.factories import ProductFactory

ORDERS_URL = "/api/v1/orders/"
PRODUCTS_URL = "/api/v1/products/"

_names = itertools.count(1)
_keys = itertools.count(1)


def make_client(username: str | None = None) -> APIClient:
    user = User.objects.create_user(username or f"shop{next(_names)}")
    token = api_token_issue(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    client.user = user
    client.token = token
    return client


def new_key() -> str:
    return f"key-{next(_keys)}"


def order_body(**overrides) -> dict:
    body = {
        "customer_email": "ann@example.com",
        "currency": "EUR",
        "payment_method": "pm_card_ok",
        "lines": [{"sku": "MUG", "quantity": 2}, {"sku": "TEE", "quantity": 1}],
    }
    body.update(overrides)
    return body


def place(client, body=None, key=None, **extra):
    return client.post(
        ORDERS_URL,
        order_body() if body is None else body,
        format="json",
        headers={"Idempotency-Key": key or new_key()},
        **extra,
    )


def cancel(client, order_id, key=None):
    return client.post(
        f"{ORDERS_URL}{order_id}/cancel/", format="json", headers={"Idempotency-Key": key or new_key()}
    )


def assert_envelope(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    return body["error"]


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def catalog(db):
    """EUR products with stock, one sold only in USD, one retired."""
    ProductFactory(sku="MUG", name="Mug", price=Decimal("12.50"), on_hand=50)
    ProductFactory(sku="TEE", name="T-shirt", price=Decimal("20.00"), on_hand=50)
    ProductFactory(sku="CAP", name="Cap", price=Decimal("7.99"), on_hand=0)
    ProductFactory(sku="US-HAT", name="Hat", price=Decimal("15.00"), currency="USD", on_hand=5)
    ProductFactory(sku="OLD", name="Retired", price=Decimal("1.00"), active=False)


@pytest.fixture
def shop(db):
    return make_client("shop-a")


@pytest.fixture
def other_shop(db):
    return make_client("shop-b")
