"""The database refuses impossible stock even when Python is bypassed."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F

from inventory.models import Reservation, StockLevel, StockMovement
from tests.inventory.factories import ProductFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "change",
    [
        {"on_hand": -1},
        {"reserved": -1},
        {"reserved": F("on_hand") + 1},
    ],
)
def test_stock_counter_checks(change):
    ProductFactory(sku="A", on_hand=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        StockLevel.objects.filter(product_id="A").update(**change)


def test_one_reservation_per_order_and_sku():
    ProductFactory(sku="A", on_hand=3)
    Reservation.objects.create(order_id=1, product_id="A", quantity=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Reservation.objects.create(order_id=1, product_id="A", quantity=2)


@pytest.mark.parametrize(("kind", "delta"), [("sale", 1), ("return", -1), ("adjust", 0)])
def test_movement_sign_checks(kind, delta):
    ProductFactory(sku="A")
    with pytest.raises(IntegrityError), transaction.atomic():
        StockMovement.objects.create(product_id="A", kind=kind, delta=delta)


@pytest.mark.parametrize("statement", ["UPDATE {t} SET delta = 99", "DELETE FROM {t}"])
def test_the_journal_cannot_be_rewritten_even_in_sql(statement):
    ProductFactory(sku="A", on_hand=3)
    with pytest.raises(IntegrityError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute(statement.format(t=StockMovement._meta.db_table))
    assert StockMovement.objects.get().delta == 3
