"""Catalog reads (constant queries, keyset pages) and the conservation check."""

from decimal import Decimal

import pytest

from core.errors import ConcordError
from inventory import services
from inventory.errors import UnknownSku
from inventory.models import StockLevel, StockMovement
from inventory.selectors import product_list, products_by_sku, stock_check_conservation, stock_level_get
from tests.inventory.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_product_list_shows_available_and_pages_by_sku():
    ProductFactory(sku="A", on_hand=5, price=Decimal("2.50"))
    ProductFactory(sku="B", on_hand=3)
    ProductFactory(sku="C", on_hand=1, active=False)
    services.stock_reserve(order_id=1, lines=[("A", 2)])

    first = product_list(after_sku=None, limit=1)
    second = product_list(after_sku=first[-1].sku, limit=10)

    assert [(p.sku, p.price, p.available) for p in first] == [("A", Decimal("2.50"), 3)]
    assert [(p.sku, p.available) for p in second] == [("B", 3)]
    assert [p.sku for p in product_list(after_sku=None, limit=10, include_inactive=True)] == ["A", "B", "C"]


def test_product_list_costs_one_query_whatever_the_page_size(django_assert_num_queries):
    for i in range(30):
        ProductFactory(sku=f"P{i:02d}", on_hand=i)
    with django_assert_num_queries(1):
        assert len(product_list(after_sku=None, limit=2)) == 2
    with django_assert_num_queries(1):
        assert len(product_list(after_sku=None, limit=30)) == 30


@pytest.mark.parametrize("limit", [0, 201, "5", True])
def test_product_list_rejects_bad_limits(limit):
    with pytest.raises(ConcordError) as exc:
        product_list(after_sku=None, limit=limit)
    assert exc.value.code == "invalid_limit"


def test_products_by_sku_in_one_query(django_assert_num_queries):
    ProductFactory(sku="A")
    ProductFactory(sku="B", active=False)
    with django_assert_num_queries(1):
        found = products_by_sku(["A", "B", "missing"])
    assert set(found) == {"A", "B"}
    assert found["B"].active is False
    assert products_by_sku([]) == {}


def test_products_by_sku_reads_what_the_catalog_page_reads():
    ProductFactory(sku="A", on_hand=5, price=Decimal("2.50"))
    ProductFactory(sku="B", on_hand=0, active=False, price=Decimal("1999.99"))
    services.stock_reserve(order_id=1, lines=[("A", 2)])
    StockLevel.objects.filter(product_id="B").delete()  # no stock row: available 0

    found = products_by_sku(["B", "A"])

    assert found == {p.sku: p for p in product_list(after_sku=None, limit=10, include_inactive=True)}
    assert found["A"].available == 3 and found["B"].available == 0
    assert found["A"].price == Decimal("2.50") and str(found["B"].price) == "1999.99"


def test_stock_level_get_unknown_sku():
    with pytest.raises(UnknownSku):
        stock_level_get("NOPE")


def test_conservation_check_finds_each_kind_of_drift():
    ProductFactory(sku="OK", on_hand=5)
    ProductFactory(sku="DRIFT", on_hand=5)
    ProductFactory(sku="GHOST", on_hand=5)
    assert stock_check_conservation() == []

    # Someone bypassed the services: counters no longer match journal and reservations.
    StockLevel.objects.filter(product_id="DRIFT").update(on_hand=7)
    StockLevel.objects.filter(product_id="GHOST").update(reserved=2)

    problems = stock_check_conservation()
    assert {(p.sku, p.kind, p.expected, p.actual) for p in problems} == {
        ("DRIFT", "on_hand_vs_movements", 5, 7),
        ("GHOST", "reserved_vs_held", 0, 2),
    }
    assert [p.sku for p in stock_check_conservation(skus=["GHOST"])] == ["GHOST"]


def test_conservation_check_is_one_query(django_assert_num_queries):
    for i in range(10):
        ProductFactory(sku=f"P{i}", on_hand=3)
    with django_assert_num_queries(1):
        stock_check_conservation()


def test_movements_are_append_only():
    ProductFactory(sku="A", on_hand=5)
    movement = StockMovement.objects.get()
    movement.delta = 50
    with pytest.raises(ValueError, match="append-only"):
        movement.save()
    with pytest.raises(ValueError, match="append-only"):
        movement.delete()
