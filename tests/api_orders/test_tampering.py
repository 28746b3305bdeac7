"""Prices, totals and states come from the server. A body that tries to set them
is rejected with 400 naming the field (never honoured), and nothing is written."""

import pytest

from idempotency.models import IdempotencyRecord
from orders.models import Order
from tests.api_orders.conftest import assert_envelope, order_body, place

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "extra",
    [
        {"total": "0.01"},
        {"status": "confirmed"},
        {"failure_reason": None},
        {"id": 1},
        {"client_id": 999},
        {"price": "0.01"},
    ],
)
def test_order_level_server_fields_are_rejected(catalog, shop, extra):
    response = place(shop, {**order_body(), **extra})

    error = assert_envelope(response, 400, "validation_error")
    assert list(error["details"]) == list(extra)
    assert Order.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


@pytest.mark.parametrize("extra", [{"unit_price": "0.01"}, {"price": "0.01"}, {"line_total": "0.02"}])
def test_line_level_prices_are_rejected(catalog, shop, extra):
    body = order_body(lines=[{"sku": "MUG", "quantity": 2, **extra}])

    error = assert_envelope(place(shop, body), 400, "validation_error")

    assert list(error["details"]) == ["lines"]
    assert list(error["details"]["lines"]["0"]) == list(extra)
    assert Order.objects.count() == 0


def test_without_the_tampered_fields_the_catalog_decides(catalog, shop):
    place(shop, {**order_body(), "total": "0.01", "status": "confirmed"})

    order = place(shop).json()

    assert order["total"] == "45.00"
    assert order["status"] == "pending"
    assert [line["unit_price"] for line in order["lines"]] == ["12.50", "20.00"]
