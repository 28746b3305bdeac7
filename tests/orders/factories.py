"""Order factories. OrderFactory builds rows directly (any status) for state tests;
placing a real order goes through orders.services.order_create."""

from __future__ import annotations

from decimal import Decimal

import factory

from orders.choices import FailureReason, OrderStatus
from orders.models import Order, OrderLine


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    client_id = 1
    customer_email = factory.Sequence(lambda n: f"buyer{n}@example.com")
    currency = "EUR"
    total = Decimal("20.00")
    payment_method = "pm_card_ok"
    status = OrderStatus.PENDING
    failure_reason = factory.LazyAttribute(
        lambda o: (
            FailureReason.CANCELLED_BY_CLIENT
            if o.status in (OrderStatus.CANCELLING, OrderStatus.CANCELLED)
            else None
        )
    )


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    quantity = 2
    unit_price = Decimal("10.00")
    line_total = factory.LazyAttribute(lambda ln: ln.unit_price * ln.quantity)
