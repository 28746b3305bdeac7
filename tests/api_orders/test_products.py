"""GET products/: the catalog with decimal-string prices, availability and a sku cursor."""

from decimal import Decimal

import pytest

from inventory.services import stock_reserve
from tests.api_orders.conftest import PRODUCTS_URL, assert_envelope
from tests.inventory.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_products_list_shape_and_money_as_strings(catalog, shop):
    body = shop.get(PRODUCTS_URL).json()

    assert body["next"] is None
    assert [p["sku"] for p in body["results"]] == ["CAP", "MUG", "TEE", "US-HAT"]  # retired OLD is not sold
    assert body["results"][1] == {
        "sku": "MUG",
        "name": "Mug",
        "price": "12.50",
        "currency": "EUR",
        "available": 50,
    }
    assert body["results"][0]["available"] == 0


def test_available_is_on_hand_minus_reserved(catalog, shop):
    stock_reserve(order_id=1, lines=[("MUG", 3)])

    mug = next(p for p in shop.get(PRODUCTS_URL).json()["results"] if p["sku"] == "MUG")

    assert mug["available"] == 47


def test_jpy_prices_have_no_decimals(db, shop):
    ProductFactory(sku="TEA", name="Tea", price=Decimal("1500"), currency="JPY")

    assert shop.get(PRODUCTS_URL).json()["results"][0]["price"] == "1500"


def test_the_cursor_walks_the_catalog_in_sku_order(db, shop):
    for i in range(7):
        ProductFactory(sku=f"S{i}")

    seen, url = [], f"{PRODUCTS_URL}?limit=3"
    while url:
        body = shop.get(url).json()
        seen += [p["sku"] for p in body["results"]]
        url = body["next"]

    assert seen == [f"S{i}" for i in range(7)]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "cursor=zzz", "cursor=%FF%FE"])
def test_bad_queries_are_400(db, shop, query):
    assert_envelope(shop.get(f"{PRODUCTS_URL}?{query}"), 400, "validation_error")
