"""Every staff action on an order, in every state it is offered in, keeps the books agreeing.

Actions are read from the operations registry (a new action is covered the day it is
declared) and run through the back office's one flow as support; what waits for
approval is approved (or rejected) by finance. After each, the world settles (sagas run
to rest, refunds are sent) and then: stock is conserved, the ledger balances, payments
agree with the provider's charges (tests/fixtures/books.py), and a reconciliation pass
opens nothing that the pass just before the action had not already seen.

- test_every_offered_action_...: each action once on each state that offers it;
- test_random_sequences_...: a Hypothesis state machine, random sequences of actions on
  orders in every state. A fixed, derandomized profile keeps it well under a minute
  (CONCORD_HYPOTHESIS_EXAMPLES for more, CONCORD_HYPOTHESIS_SHRINK=1 to shrink a failure).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from config.celery_app import app as celery_app
from core.errors import ConcordError
from reconciliation.services import reconcile_run
from tests.fixtures.books import assert_books_agree, reconcile_opens_nothing

from .floor import STATES, Floor

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PHASES = [Phase.explicit, Phase.generate]
if os.environ.get("CONCORD_HYPOTHESIS_SHRINK"):
    PHASES.append(Phase.shrink)
EXAMPLES = int(os.environ.get("CONCORD_HYPOTHESIS_EXAMPLES", "4"))


@pytest.fixture
def floor(psp, fast_checkout, support_user, finance_user, settings):
    settings.RECONCILIATION = {**settings.RECONCILIATION, "SETTLE_SECONDS": 0}
    settings.BACKOFFICE_APPROVAL_THRESHOLD = "100.00"
    settings.PSP_READ_TIMEOUT = 0.3  # an unanswered call costs little
    # A task queued on commit runs inline, as a worker would run it.
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield lambda: Floor(psp, support_user, finance_user)
    celery_app.conf.task_always_eager = before


def act_and_check(
    floor: Floor, order_id: int, op: str, params: dict[str, Any], *, approve: bool = True
) -> str:
    """One action, then the checks. Returns what happened, for the tests' records."""
    reconcile_run()  # what is already known before the action
    try:
        submitted = floor.act(order_id, op, params, reason=f"test: {op}", approve=approve)
    except ConcordError as exc:
        # Offered, yet the owning service refused (it is the authority): nothing moved.
        outcome = f"{op} refused: {exc.code}"
    else:
        outcome = f"{op} (approval)" if submitted.approval_id else op
    floor.settle()
    assert_books_agree(floor.psp)
    reconcile_opens_nothing()
    return outcome


@pytest.mark.parametrize("state", STATES)
def test_every_offered_action_keeps_the_books_agreeing(floor, state):
    # given: the actions an order in this state is offered
    probe = floor()
    ops = sorted({offer.op for offer in probe.offers(probe.place(state))})
    assert "note" in ops
    outcomes = []
    for op in ops:
        # when: each runs on a fresh order in this state (two units: the money-moving
        # ones wait for finance, who approves)
        shop = floor()
        order_id = shop.place(state, quantity=2)
        offer = next(o for o in shop.offers(order_id) if o.op == op)
        # then: checked inside, after each action
        outcomes.append(act_and_check(shop, order_id, op, dict(offer.params)))
    assert all("refused" not in outcome for outcome in outcomes), outcomes


def test_random_sequences_of_actions_keep_the_books_agreeing(floor):
    ran: Counter[str] = Counter()

    class StaffActions(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.floor = floor()

        @initialize(quantities=st.lists(st.integers(1, 2), min_size=len(STATES), max_size=len(STATES)))
        def open_shop(self, quantities: list[int]) -> None:
            """One order in every state, so every action is on offer from the start."""
            for state, quantity in zip(STATES, quantities, strict=True):
                self.floor.place(state, quantity)

        @rule(data=st.data())
        def staff_action(self, data: st.DataObject) -> None:
            # The action first (every kind offered somewhere now is as likely), then where.
            offered: dict[str, list[tuple[int, Any]]] = {}
            for order_id in self.floor.orders:
                for offer in self.floor.offers(order_id):
                    offered.setdefault(offer.op, []).append((order_id, offer))
            op = data.draw(st.sampled_from(sorted(offered)), label="action")
            order_id, offer = data.draw(st.sampled_from(offered[op]), label="order")
            params = dict(offer.params)
            if op == "refund":
                params["amount"] = data.draw(
                    st.sampled_from([params["amount"], "0.01", "10.00"]), label="amount"
                )
            approve = data.draw(st.booleans(), label="finance approves")
            ran[act_and_check(self.floor, order_id, op, params, approve=approve)] += 1

    run_state_machine_as_test(
        StaffActions,
        settings=hsettings(
            max_examples=EXAMPLES,
            stateful_step_count=5,
            deadline=None,
            derandomize=True,
            database=None,
            phases=PHASES,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert sum(ran.values()) >= EXAMPLES, ran  # every example acted
