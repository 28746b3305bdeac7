"""The Location of a new order is built from a path reversed once per script prefix
(issue 16): it must stay exactly what reverse() gives, under any prefix."""

from __future__ import annotations

import pytest
from django.urls import clear_script_prefix, reverse, set_script_prefix

from orders.api import order_location


@pytest.mark.parametrize("order_id", [1, 42, 918273645, 10**18 - 1])
def test_the_location_is_what_reverse_gives(order_id):
    assert order_location(order_id) == reverse("api-order-detail", kwargs={"order_id": order_id})


def test_the_location_follows_the_script_prefix():
    set_script_prefix("/shop/")
    try:
        assert order_location(7) == reverse("api-order-detail", kwargs={"order_id": 7})
        assert order_location(7).startswith("/shop/")
    finally:
        clear_script_prefix()
    assert not order_location(7).startswith("/shop/")
