"""Placing an order: catalog prices, validation codes, constant SQL."""

from decimal import Decimal

import pytest
from django_fsm_log.models import StateLog

from core.errors import ConcordError
from inventory.selectors import stock_level_get
from orders.models import Order, OrderLine
from orders.services import order_create
from tests.inventory.factories import ProductFactory

pytestmark = pytest.mark.django_db


def _place(**overrides):
    args = {
        "client_id": 1,
        "customer_email": "ann@example.com",
        "currency": "EUR",
        "payment_method": "pm_card_ok",
        "lines": [("MUG", 2), ("CAP", 1)],
        **overrides,
    }
    return order_create(**args)


def test_prices_come_from_the_catalog(catalog):
    order = _place()

    assert order.status == "pending"
    assert order.failure_reason is None
    assert [(ln.sku, ln.quantity, ln.unit_price, ln.line_total) for ln in order.lines] == [
        ("MUG", 2, Decimal("12.50"), Decimal("25.00")),
        ("CAP", 1, Decimal("7.99"), Decimal("7.99")),
    ]
    assert order.total == Decimal("32.99")
    stored = Order.objects.get(pk=order.id)
    assert (stored.total, stored.client_id, stored.customer_email) == (Decimal("32.99"), 1, "ann@example.com")
    assert OrderLine.objects.filter(order=stored).count() == 2
    log = StateLog.objects.for_(stored).get()
    assert (log.transition, log.source_state, log.state) == ("create", None, "pending")


def test_placing_does_not_touch_stock(catalog):
    _place()
    assert stock_level_get("MUG").reserved == 0


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"lines": [("NOPE", 1)]}, "unknown_sku"),
        ({"lines": [("OLD", 1)]}, "unknown_sku"),
        ({"lines": [("", 1)]}, "unknown_sku"),
        ({"lines": [(None, 1)]}, "unknown_sku"),
        ({"lines": [("US-HAT", 1)]}, "currency_mismatch"),
        ({"lines": [("MUG", 0)]}, "invalid_quantity"),
        ({"lines": [("MUG", 1001)]}, "invalid_quantity"),
        ({"lines": [("MUG", "2")]}, "invalid_quantity"),
        ({"lines": [("MUG", True)]}, "invalid_quantity"),
        ({"lines": [("MUG", 2.0)]}, "invalid_quantity"),
        ({"lines": [("MUG", 1)] * 101}, "too_many_lines"),
        ({"lines": []}, "empty_lines"),
        ({"lines": None}, "empty_lines"),
        ({"lines": [("MUG", 1), ("MUG", 2)]}, "duplicate_sku"),
        ({"lines": [("MUG",)]}, "invalid_lines"),
        ({"customer_email": "not-an-email"}, "invalid_email"),
        ({"customer_email": ""}, "invalid_email"),
        ({"customer_email": None}, "invalid_email"),
        ({"customer_email": "a" * 250 + "@example.com"}, "invalid_email"),
        ({"currency": "XXX"}, "invalid_currency"),
        ({"payment_method": ""}, "invalid_payment_method"),
        ({"payment_method": "x" * 65}, "invalid_payment_method"),
        ({"client_id": "1"}, "invalid_client"),
    ],
)
def test_validation_codes(catalog, overrides, code):
    with pytest.raises(ConcordError) as exc:
        _place(**overrides)
    assert exc.value.code == code
    assert not Order.objects.exists()


def test_unknown_and_mismatched_skus_are_listed(catalog):
    with pytest.raises(ConcordError) as exc:
        _place(lines=[("NOPE", 1), ("MUG", 1), ("GONE", 1)])
    assert exc.value.details == {"skus": ["NOPE", "GONE"]}

    with pytest.raises(ConcordError) as exc:
        _place(currency="USD", lines=[("MUG", 1), ("US-HAT", 1)])
    assert exc.value.code == "currency_mismatch"
    assert exc.value.details == {"skus": ["MUG"], "currency": "USD"}


def test_quantity_bounds_are_inclusive(catalog):
    order = _place(lines=[("MUG", 1), ("TEE", 1000)])
    assert [ln.quantity for ln in order.lines] == [1, 1000]


def test_query_count_does_not_grow_with_lines(catalog, django_assert_num_queries):
    for i in range(50):
        ProductFactory(sku=f"BULK-{i:02d}", price=Decimal("1.00"))

    # catalog read; order, lines and audit row in one statement; the order.placed
    # event (inside the test's transaction, order_create joins it without a savepoint)
    with django_assert_num_queries(3):
        _place(lines=[("BULK-00", 1)])
    with django_assert_num_queries(3):
        order = _place(lines=[(f"BULK-{i:02d}", 1) for i in range(50)])
    assert order.total == Decimal("50.00")
    assert len(order.lines) == 50
