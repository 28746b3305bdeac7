from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from tests.inventory.factories import ProductFactory, UserFactory


@pytest.fixture
def product(db):
    """A product with 10 units on hand."""
    return ProductFactory(sku="WIDGET", price=Decimal("25.00"), on_hand=10)


@pytest.fixture
def staff_user(db):
    return UserFactory(username="alice")


@pytest.fixture
def stock_keeper(db):
    """A staff user allowed to see reservations and release held stock."""
    user = UserFactory(username="keeper")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="inventory",
            codename__in=["release_reservation", "view_reservation", "change_reservation"],
        )
    )
    return user
