"""Random interleavings of every stock operation keep stock conserved (DESIGN §6.4)."""

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from core.errors import ConcordError
from inventory import services
from inventory.errors import OutOfStock
from inventory.selectors import reservations_for_order, stock_level_get
from tests.inventory.factories import ProductFactory
from tests.inventory.helpers import assert_stock_conserved

SKUS = ["S1", "S2", "S3"]
ORDER_IDS = st.integers(min_value=1, max_value=12)


class StockMachine(RuleBasedStateMachine):
    """The model: what each order should hold, and how many units left the shelf."""

    @initialize()
    def catalog(self):
        for sku in SKUS:
            ProductFactory(sku=sku, on_hand=4)
        self.order_state: dict[int, str] = {}
        self.sold = dict.fromkeys(SKUS, 0)
        self.adjusted = dict.fromkeys(SKUS, 4)

    @rule(
        order_id=ORDER_IDS,
        lines=st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 3)), min_size=1, max_size=3),
    )
    def reserve(self, order_id, lines):
        try:
            services.stock_reserve(order_id=order_id, lines=lines)
        except OutOfStock:
            assert order_id not in self.order_state
        except ConcordError:
            # A second reserve for an order with other lines or given-back stock.
            assert order_id in self.order_state
        else:
            self.order_state.setdefault(order_id, "held")

    @rule(order_id=ORDER_IDS)
    def commit(self, order_id):
        expected_ok = self.order_state.get(order_id) in ("held", "committed", "returned")
        try:
            services.stock_commit(order_id=order_id, reason="paid")
        except ConcordError:
            assert not expected_ok
            return
        assert expected_ok
        if self.order_state[order_id] == "held":
            for r in reservations_for_order(order_id):
                self.sold[r.sku] += r.quantity
            self.order_state[order_id] = "committed"

    @rule(order_id=ORDER_IDS)
    def release(self, order_id):
        expected_ok = self.order_state.get(order_id) in (None, "held", "released")
        try:
            services.stock_release(order_id=order_id, reason="declined")
        except ConcordError:
            assert not expected_ok
            return
        assert expected_ok
        if order_id in self.order_state:
            self.order_state[order_id] = "released"

    @rule(order_id=ORDER_IDS)
    def restock(self, order_id):
        expected_ok = self.order_state.get(order_id) in ("committed", "returned")
        try:
            services.stock_restock(order_id=order_id, reason="cancelled")
        except ConcordError:
            assert not expected_ok
            return
        assert expected_ok
        if self.order_state[order_id] == "committed":
            for r in reservations_for_order(order_id):
                self.sold[r.sku] -= r.quantity
            self.order_state[order_id] = "returned"

    @rule(sku=st.sampled_from(SKUS), on_hand=st.integers(0, 12))
    def set_on_hand(self, sku, on_hand):
        before = stock_level_get(sku)
        try:
            services.stock_set_on_hand(sku=sku, on_hand=on_hand, reason="stock take")
        except ConcordError:
            assert on_hand < before.reserved
            return
        self.adjusted[sku] += on_hand - before.on_hand

    @invariant()
    def stock_is_conserved(self):
        assert_stock_conserved()
        for sku in SKUS:
            # initial + adjustments = on hand + sold (DESIGN §6.4)
            assert self.adjusted[sku] == stock_level_get(sku).on_hand + self.sold[sku]


@pytest.mark.django_db
def test_stock_operations_conserve_stock(django_db_blocker):
    # Each example needs a clean catalog: run it in a savepoint and roll it back.
    from django.db import transaction

    class RolledBack(StockMachine):
        def __init__(self):
            super().__init__()
            self._atomic = transaction.atomic()
            self._atomic.__enter__()

        def teardown(self):
            transaction.set_rollback(True)
            self._atomic.__exit__(None, None, None)

    RolledBack.TestCase.settings = settings(
        max_examples=30,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    RolledBack.TestCase().runTest()
