"""The database keeps order rows coherent even when Python is bypassed."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from orders.models import Order, OrderLine
from tests.orders.factories import OrderFactory, OrderLineFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "change",
    [
        {"failure_reason": "out_of_stock"},  # pending with a reason
        {"status": "cancelled", "failure_reason": None},  # cancelled without one
        {"total": Decimal("-1")},
    ],
)
def test_order_checks(change):
    order = OrderFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(**change)


@pytest.mark.parametrize(
    "values",
    [
        {"quantity": 0},
        {"quantity": 1001},
        {"quantity": 2, "unit_price": Decimal("1.00"), "line_total": Decimal("3.00")},
    ],
)
def test_line_checks(values):
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderLineFactory(**values)


def test_one_line_per_sku():
    line = OrderLineFactory(sku="A")
    with pytest.raises(IntegrityError), transaction.atomic():
        OrderLine.objects.create(
            order=line.order, sku="A", quantity=1, unit_price=Decimal("1"), line_total=Decimal("1")
        )
