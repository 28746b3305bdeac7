"""Random interleavings of reserve / commit / release (inventory) and pay / capture /
refund (payments), with the stock and ledger invariants of DESIGN §6 (4 and 9)
checked after every rule.

Each Hypothesis example runs inside a savepoint that is rolled back at teardown, so
examples start from an empty database. Because nothing commits, the invariant also
runs SET CONSTRAINTS ALL IMMEDIATE: that fires the ledger's deferred balance
trigger (and every other deferred constraint) as a COMMIT would.
"""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from core.errors import ConcordError
from inventory import selectors as inventory_selectors
from inventory import services as inventory_services
from payments import selectors as payment_selectors
from payments import services as payment_services
from payments.choices import LedgerAccountCode, PaymentStatus

CURRENCY = "EUR"
PRICES = {"SKU-A": Decimal("4.99"), "SKU-B": Decimal("12.50"), "SKU-C": Decimal("0.10")}
# Shrinking replays hundreds of database-backed runs and can outlast the test timeout;
# a failure still prints its full step sequence. CONCORD_HYPOTHESIS_SHRINK=1 turns it
# on when you want the minimal example.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate]
if os.environ.get("CONCORD_HYPOTHESIS_SHRINK"):
    PHASES.append(Phase.shrink)
cents = st.integers(min_value=1, max_value=3000).map(lambda c: Decimal(c).scaleb(-2))


class StockAndLedger(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # One savepoint per example, rolled back in teardown().
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.next_order_id = 1
        self.initial: dict[str, int] = {}
        self.on_hand: dict[str, int] = {}
        self.reserved: dict[str, int] = {}
        self.sold: dict[str, int] = {}
        self.held: dict[int, dict[str, int]] = {}  # order id -> lines still held
        self.finished: set[int] = set()  # committed or released orders
        self.unpaid: list[int] = []  # orders that may still get a payment
        # payment id -> [amount, refunded, pending]
        self.captured: dict[int, list[Decimal]] = {}
        self.pending_refunds: dict[int, tuple[int, Decimal]] = {}  # refund id -> (payment id, amount)
        self.unknown_payments: list[int] = []

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- stock ---------------------------------------------------------------------

    @initialize(stock=st.lists(st.integers(min_value=0, max_value=8), min_size=3, max_size=3))
    def stock_the_shelves(self, stock):
        for (sku, price), units in zip(sorted(PRICES.items()), stock, strict=True):
            inventory_services.product_upsert(sku=sku, name=sku.title(), price=price, currency=CURRENCY)
            inventory_services.stock_set_on_hand(sku=sku, on_hand=units, reason="initial count")
            self.initial[sku] = self.on_hand[sku] = units
            self.reserved[sku], self.sold[sku] = 0, 0

    @rule(
        lines=st.dictionaries(
            st.sampled_from(sorted(PRICES)), st.integers(min_value=1, max_value=4), min_size=1
        )
    )
    def reserve(self, lines):
        order_id = self.next_order_id
        self.next_order_id += 1
        fits = all(self.on_hand[s] - self.reserved[s] >= q for s, q in lines.items())
        if not fits:
            with pytest.raises(ConcordError) as excinfo:
                inventory_services.stock_reserve(
                    order_id=order_id, lines=list(lines.items()), reason="checkout"
                )
            assert excinfo.value.code == "out_of_stock"
            return
        inventory_services.stock_reserve(order_id=order_id, lines=list(lines.items()), reason="checkout")
        for s, q in lines.items():
            self.reserved[s] += q
        self.held[order_id] = dict(lines)
        self.unpaid.append(order_id)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), repeat=st.booleans())
    def commit(self, data, repeat):
        order_id = data.draw(st.sampled_from(sorted(self.held)))
        for _ in range(2 if repeat else 1):  # a retried step changes nothing the second time
            inventory_services.stock_commit(order_id=order_id, reason="order confirmed")
        for s, q in self.held.pop(order_id).items():
            self.reserved[s] -= q
            self.on_hand[s] -= q
            self.sold[s] += q
        self.finished.add(order_id)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), repeat=st.booleans())
    def release(self, data, repeat):
        order_id = data.draw(st.sampled_from(sorted(self.held)))
        for _ in range(2 if repeat else 1):
            inventory_services.stock_release(order_id=order_id, reason="order cancelled")
        for s, q in self.held.pop(order_id).items():
            self.reserved[s] -= q
        self.finished.add(order_id)

    @precondition(lambda self: self.finished)
    @rule(data=st.data())
    def illegal_stock_move_is_refused(self, data):
        order_id = data.draw(st.sampled_from(sorted(self.finished)))
        committed = any(r.state == "committed" for r in inventory_selectors.reservations_for_order(order_id))
        move = inventory_services.stock_release if committed else inventory_services.stock_commit
        with pytest.raises(ConcordError):
            move(order_id=order_id, reason="too late")

    # --- payments ------------------------------------------------------------------

    @precondition(lambda self: self.unpaid)
    @rule(data=st.data(), outcome=st.sampled_from(["capture", "fail", "unknown", "unknown_then_capture"]))
    def pay(self, data, outcome):
        order_id = data.draw(st.sampled_from(self.unpaid))
        self.unpaid.remove(order_id)
        amount = sum(
            (PRICES[r.sku] * r.quantity for r in inventory_selectors.reservations_for_order(order_id)),
            Decimal(0),
        )
        payment = payment_services.payment_create(
            order_id=order_id, amount=amount, currency=CURRENCY, payment_method="pm_card_ok"
        )
        pid = payment.id
        if outcome == "fail":
            payment_services.payment_fail(payment_id=pid, failure_code="card_declined", reason="declined")
            return
        if outcome.startswith("unknown"):
            payment_services.payment_mark_unknown(payment_id=pid, error="timeout", reason="no answer")
            if outcome == "unknown":
                self.unknown_payments.append(pid)
                return
        payment_services.payment_capture(payment_id=pid, provider_charge_id=f"ch_{pid}", reason="captured")
        self.captured[pid] = [amount, Decimal(0), Decimal(0)]

    @precondition(lambda self: self.unknown_payments)
    @rule(data=st.data(), charged=st.booleans())
    def resolve_unknown(self, data, charged):
        pid = data.draw(st.sampled_from(self.unknown_payments))
        self.unknown_payments.remove(pid)
        if charged:
            dto = payment_services.payment_capture(
                payment_id=pid, provider_charge_id=f"ch_{pid}", reason="lookup"
            )
            self.captured[pid] = [dto.amount, Decimal(0), Decimal(0)]
        else:
            payment_services.payment_fail(payment_id=pid, failure_code="no_charge", reason="lookup")

    @precondition(lambda self: self.captured)
    @rule(data=st.data(), amount=cents, settle=st.sampled_from(["succeed", "fail", "later"]))
    def refund(self, data, amount, settle):
        pid = data.draw(st.sampled_from(sorted(self.captured)))
        captured, refunded, pending = self.captured[pid]
        remainder = captured - refunded - pending
        if amount > remainder:
            with pytest.raises(ConcordError) as excinfo:
                payment_services.refund_create(payment_id=pid, amount=amount, reason="customer asked")
            assert excinfo.value.code == "refund_exceeds_captured"
            return
        dto = payment_services.refund_create(payment_id=pid, amount=amount, reason="customer asked")
        self.captured[pid][2] += amount
        self.pending_refunds[dto.id] = (pid, amount)
        if settle != "later":
            self._settle(dto.id, succeed=settle == "succeed", repeat=False)

    @precondition(lambda self: self.pending_refunds)
    @rule(data=st.data(), succeed=st.booleans(), repeat=st.booleans())
    def settle_pending_refund(self, data, succeed, repeat):
        self._settle(data.draw(st.sampled_from(sorted(self.pending_refunds))), succeed=succeed, repeat=repeat)

    def _settle(self, refund_id, *, succeed, repeat):
        pid, amount = self.pending_refunds.pop(refund_id)
        for _ in range(2 if repeat else 1):  # a replayed webhook posts nothing twice
            if succeed:
                payment_services.refund_succeed(
                    refund_id=refund_id, provider_refund_id=f"re_{refund_id}", reason="ok"
                )
            else:
                payment_services.refund_fail(refund_id=refund_id, failure_code="declined", reason="refused")
        self.captured[pid][2] -= amount
        if succeed:
            self.captured[pid][1] += amount

    # --- invariants ----------------------------------------------------------------

    @invariant()
    def stock_is_conserved(self):
        for sku in self.initial:
            level = inventory_selectors.stock_level_get(sku)
            assert 0 <= level.reserved <= level.on_hand
            assert (level.on_hand, level.reserved) == (self.on_hand[sku], self.reserved[sku])
            assert self.initial[sku] == level.on_hand + self.sold[sku]
            held = sum(
                r.quantity
                for order_id in self.held
                for r in inventory_selectors.reservations_for_order(order_id)
                if r.sku == sku and r.state == "held"
            )
            assert level.reserved == held
        assert inventory_selectors.stock_check_conservation() == []

    @invariant()
    def ledger_balances(self):
        # Fire the deferred constraint triggers now, as COMMIT would.
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        assert payment_selectors.ledger_unbalanced_transactions() == []
        net = sum((captured - refunded for captured, refunded, _ in self.captured.values()), Decimal(0))
        clearing = payment_selectors.ledger_account_balance(
            code=LedgerAccountCode.PROVIDER_CLEARING, currency=CURRENCY
        )
        funds = payment_selectors.ledger_account_balance(
            code=LedgerAccountCode.CUSTOMER_FUNDS, currency=CURRENCY
        )
        assert clearing == net
        assert funds == -net
        for pid, (captured, refunded, _) in self.captured.items():
            payment = payment_selectors.payment_get(payment_id=pid)
            assert payment.refunded_amount == refunded <= captured
            expected = (
                PaymentStatus.CAPTURED
                if refunded == 0
                else PaymentStatus.REFUNDED
                if refunded == captured
                else PaymentStatus.PARTIALLY_REFUNDED
            )
            assert payment.status == expected


@pytest.mark.django_db
def test_stock_and_ledger_invariants_hold_under_random_interleavings():
    run_state_machine_as_test(
        StockAndLedger,
        settings=settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            database=None,  # no .hypothesis/ directory in the checkout
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            phases=PHASES,
        ),
    )
