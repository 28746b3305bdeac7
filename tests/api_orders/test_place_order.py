"""POST /api/v1/orders/: the order JSON, catalog prices, and what is written with it."""

from decimal import Decimal

import pytest

from orders.selectors import order_get
from payments.selectors import payment_for_order
from sagas.selectors import saga_run_for_subject
from tests.api_orders.conftest import ORDERS_URL, assert_envelope, order_body, place

pytestmark = pytest.mark.django_db


def test_place_order_answers_201_with_the_order_priced_from_the_catalog(catalog, shop):
    response = place(shop)

    assert response.status_code == 201, response.content
    order = response.json()
    assert set(order) == {
        "id",
        "status",
        "failure_reason",
        "customer_email",
        "currency",
        "total",
        "lines",
        "payment",
        "created_at",
        "updated_at",
    }
    assert order["payment"] == {
        "status": "pending",
        "amount": "45.00",
        "refunded_amount": "0.00",
        "refunds": [],
    }
    assert order["status"] == "pending"
    assert order["failure_reason"] is None
    assert order["customer_email"] == "ann@example.com"
    assert order["currency"] == "EUR"
    assert order["total"] == "45.00"
    assert order["lines"] == [
        {"sku": "MUG", "quantity": 2, "unit_price": "12.50", "line_total": "25.00"},
        {"sku": "TEE", "quantity": 1, "unit_price": "20.00", "line_total": "20.00"},
    ]
    assert response["Location"] == f"{ORDERS_URL}{order['id']}/"


def test_the_order_its_payment_and_its_checkout_run_are_written_together(catalog, shop):
    order_id = place(shop).json()["id"]

    order = order_get(order_id=order_id)
    assert order.client_id == shop.user.pk
    assert order.total == Decimal("45.00")
    payment = payment_for_order(order_id=order_id)
    assert payment is not None and payment.amount == Decimal("45.00") and payment.status == "pending"
    assert saga_run_for_subject(saga_type="checkout", subject_id=str(order_id)) is not None


def test_the_location_header_points_at_the_order(catalog, shop):
    response = place(shop)

    again = shop.get(response["Location"])

    assert again.status_code == 200
    assert again.json() == response.json()


def test_unknown_sku_is_400_unknown_sku_naming_the_line(catalog, shop):
    body = order_body(lines=[{"sku": "MUG", "quantity": 1}, {"sku": "NOPE", "quantity": 1}])

    error = assert_envelope(place(shop, body), 400, "unknown_sku")

    assert error["details"]["skus"] == ["NOPE"]
    assert error["details"]["lines"] == {"1": {"sku": ["Unknown sku."]}}


def test_a_retired_product_is_an_unknown_sku(catalog, shop):
    error = assert_envelope(
        place(shop, order_body(lines=[{"sku": "OLD", "quantity": 1}])), 400, "unknown_sku"
    )
    assert error["details"]["lines"] == {"0": {"sku": ["Unknown sku."]}}


def test_currency_must_match_the_products(catalog, shop):
    body = order_body(currency="USD", lines=[{"sku": "MUG", "quantity": 1}, {"sku": "US-HAT", "quantity": 1}])

    error = assert_envelope(place(shop, body), 400, "currency_mismatch")

    assert error["details"]["skus"] == ["MUG"]
    assert "0" in error["details"]["lines"]


def test_the_same_sku_twice_is_rejected_on_the_second_line(catalog, shop):
    body = order_body(lines=[{"sku": "MUG", "quantity": 1}, {"sku": "MUG", "quantity": 2}])

    error = assert_envelope(place(shop, body), 400, "validation_error")

    assert list(error["details"]["lines"]) == ["1"]


def test_an_order_for_stock_that_is_not_there_is_still_accepted_then_decided_by_the_checkout(catalog, shop):
    # The API never waits for stock or the provider: the saga decides (DESIGN §3).
    response = place(shop, order_body(lines=[{"sku": "CAP", "quantity": 3}]))

    assert response.status_code == 201
    assert response.json()["status"] == "pending"
