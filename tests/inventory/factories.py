"""Inventory factories. Products and stock are made through the services so the
stock invariants (journal, counters) hold from the first line of every test."""

from __future__ import annotations

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from inventory import services
from inventory.models import Product


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Faker("word")
    price = Decimal("10.00")
    currency = "EUR"
    active = True

    @classmethod
    def _create(cls, model_class, *args, on_hand: int = 0, **kwargs):
        services.product_upsert(
            sku=kwargs["sku"],
            name=kwargs["name"],
            price=kwargs["price"],
            currency=kwargs["currency"],
            active=kwargs["active"],
        )
        if on_hand:
            services.stock_set_on_hand(sku=kwargs["sku"], on_hand=on_hand, reason="factory stock")
        return model_class.objects.get(sku=kwargs["sku"])


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
