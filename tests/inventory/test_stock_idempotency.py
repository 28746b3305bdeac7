"""Each inventory service run twice: the second run changes nothing."""

from decimal import Decimal

import pytest
from django_fsm_log.models import StateLog

from inventory import services
from inventory.models import Product, Reservation, StockLevel, StockMovement
from tests.inventory.factories import ProductFactory

pytestmark = pytest.mark.django_db


def _snapshot():
    return (
        list(
            StockLevel.objects.order_by("pk").values_list("product_id", "on_hand", "reserved", "updated_at")
        ),
        list(Reservation.objects.order_by("pk").values_list("pk", "state", "quantity", "updated_at")),
        StockMovement.objects.count(),
        StateLog.objects.count(),
        list(Product.objects.order_by("pk").values_list("sku", "name", "price", "updated_at")),
    )


@pytest.fixture
def stock():
    ProductFactory(sku="A", on_hand=5)
    ProductFactory(sku="B", on_hand=5)


def _prepare(step):
    """Bring order 7 to the state just after `step` ran once."""
    order = ["reserve", "commit", "restock"] if step != "release" else ["reserve", "release"]
    for s in order[: order.index(step) + 1]:
        _run(s)


def _run(step):
    if step == "reserve":
        return services.stock_reserve(order_id=7, lines=[("A", 2), ("B", 1)], reason="checkout")
    return getattr(services, f"stock_{step}")(order_id=7, reason=step)


@pytest.mark.parametrize("step", ["reserve", "commit", "release", "restock"])
def test_second_run_changes_nothing(stock, step):
    _prepare(step)
    before = _snapshot()

    result = _run(step)

    assert _snapshot() == before
    assert {r.sku for r in result} == {"A", "B"}


def test_set_on_hand_twice_journals_once(stock):
    services.stock_set_on_hand(sku="A", on_hand=9, reason="count")
    before = _snapshot()
    services.stock_set_on_hand(sku="A", on_hand=9, reason="count")
    assert _snapshot() == before


def test_product_upsert_twice_writes_nothing(db):
    services.product_upsert(sku="P", name="Pen", price=Decimal("1.00"), currency="EUR")
    before = _snapshot()
    again = services.product_upsert(sku="P", name="Pen", price=Decimal("1.00"), currency="EUR")
    assert _snapshot() == before
    assert again.price == Decimal("1.00")
