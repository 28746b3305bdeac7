"""Fixtures of the webhook tests: API clients, a shop's HTTP endpoint, orders."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import transaction

from inventory.services import product_upsert, stock_set_on_hand
from orders.services import order_place
from tests.api_orders.conftest import make_client, new_key
from tests.fixtures.psp import WebhookSink

ENDPOINTS_URL = "/api/v1/webhook-endpoints/"
EVENTS_URL = "/api/v1/events/"


@pytest.fixture(autouse=True)
def _fresh_throttle():
    cache.clear()


@pytest.fixture
def shop_a(db):
    return make_client("shop-a")


@pytest.fixture
def shop_b(db):
    return make_client("shop-b")


@pytest.fixture
def endpoint_server() -> Iterator[WebhookSink]:
    """The shop's own HTTP server: records every POST, answers 200 unless told otherwise."""
    sink = WebhookSink()
    yield sink
    sink.close()


@pytest.fixture
def catalog(db):
    product_upsert(sku="WH-1", name="Webhook widget", price=Decimal("10.00"), currency="EUR")
    stock_set_on_hand(sku="WH-1", on_hand=10_000, reason="test stock")


def place_for(client, quantity: int = 1) -> int:
    with transaction.atomic():
        return order_place(
            client_id=client.user.pk,
            customer_email="buyer@example.com",
            currency="EUR",
            payment_method="pm_card_ok",
            lines=[("WH-1", quantity)],
        ).id


def register(client, url: str, event_types=("*",), key: str | None = None, **extra):
    return client.post(
        ENDPOINTS_URL,
        {"url": url, "event_types": list(event_types), **extra},
        format="json",
        headers={"Idempotency-Key": key or new_key()},
    )
