from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from tests.inventory.factories import ProductFactory, UserFactory


@pytest.fixture
def catalog(db):
    """Three EUR products and one sold only in USD, one retired."""
    ProductFactory(sku="MUG", price=Decimal("12.50"), on_hand=10)
    ProductFactory(sku="TEE", price=Decimal("20.00"), on_hand=10)
    ProductFactory(sku="CAP", price=Decimal("7.99"), on_hand=10)
    ProductFactory(sku="US-HAT", price=Decimal("15.00"), currency="USD", on_hand=10)
    ProductFactory(sku="OLD", price=Decimal("1.00"), active=False)


@pytest.fixture
def staff_user(db):
    return UserFactory(username="alice")


@pytest.fixture
def support_user(db):
    """Staff allowed to see and cancel orders."""
    user = UserFactory(username="support")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="orders", codename__in=["cancel_order", "view_order", "change_order"]
        )
    )
    return user
