"""Concurrent reservations from separate connections never oversell (real PostgreSQL)."""

import pytest

from inventory import services
from inventory.errors import OutOfStock
from inventory.selectors import reservations_for_order, stock_level_get
from tests.fixtures.concurrency import at_once
from tests.inventory.factories import ProductFactory
from tests.inventory.helpers import assert_stock_conserved


@pytest.mark.django_db(transaction=True)
def test_twenty_buyers_for_the_last_five_units():
    # given: 5 units left of a product that had 100
    ProductFactory(sku="LAST", on_hand=100)
    services.stock_set_on_hand(sku="LAST", on_hand=5, reason="only five left")

    # when: 20 orders each try to reserve one unit at the same moment
    outcomes = at_once(20, lambda i: services.stock_reserve(order_id=1000 + i, lines=[("LAST", 1)]))

    # then: exactly five win, the rest are told it is out of stock
    won = [o for o in outcomes if isinstance(o, list)]
    lost = [o for o in outcomes if isinstance(o, OutOfStock)]
    assert len(won) == 5, outcomes
    assert len(lost) == 15, outcomes
    level = stock_level_get("LAST")
    assert (level.on_hand, level.reserved) == (5, 5)
    held = sum(r.quantity for i in range(20) for r in reservations_for_order(1000 + i) if r.state == "held")
    assert held == level.reserved
    assert_stock_conserved()


@pytest.mark.django_db(transaction=True)
def test_the_same_order_reserved_twice_at_once_holds_stock_once():
    ProductFactory(sku="TWIN", on_hand=10)

    outcomes = at_once(2, lambda i: services.stock_reserve(order_id=42, lines=[("TWIN", 3)]))

    assert all(isinstance(o, list) for o in outcomes), outcomes
    level = stock_level_get("TWIN")
    assert level.reserved == 3
    assert [(r.sku, r.quantity) for r in reservations_for_order(42)] == [("TWIN", 3)]
    assert_stock_conserved()


@pytest.mark.django_db(transaction=True)
def test_commit_and_release_racing_for_one_order_apply_exactly_one():
    ProductFactory(sku="RACE", on_hand=10)
    services.stock_reserve(order_id=9, lines=[("RACE", 4)])

    def act(i):
        if i == 0:
            return services.stock_commit(order_id=9, reason="paid")
        return services.stock_release(order_id=9, reason="timed out")

    outcomes = at_once(2, act)

    # The loser sees the winner's state after the row lock and refuses (Conflict).
    assert sum(isinstance(o, list) for o in outcomes) == 1, outcomes
    assert_stock_conserved()
