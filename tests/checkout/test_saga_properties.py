"""A Hypothesis state machine over random fault sequences: provider faults,
workers dying mid-step (simulated lease expiry, with or without the provider
call having happened), duplicate deliveries and cancels — in any order.

After every rule, DESIGN §6 invariants 1-4 hold for every order so far (1 in its
strict form once an order is confirmed or cancelled: a confirmed order holds
exactly its total, a cancelled one nothing). At the end the faults stop and the
runs are driven to rest (a person retries failed ones, as support would): every
run ends completed or compensated (invariant 6), and 1-4 hold again.

Real commits (the provider-calling services refuse to run inside a transaction),
so each example uses its own skus; order ids never repeat, so the sandbox's
charges need no reset between examples. Few, short examples keep it fast.
"""

from __future__ import annotations

import itertools
import os
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, Phase, event
from hypothesis import settings as hsettings
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
from orders.sagas import CHECKOUT, ORDER_CANCELLATION
from orders.selectors import order_get
from payments.selectors import payment_for_order
from payments.services import payment_charge
from sagas.definition import RetryPolicy
from sagas.executor import advance_run
from sagas.models import SagaRun
from sagas.selectors import saga_run_for_subject
from sagas.services import saga_retry_now
from tests.inventory.factories import ProductFactory

from .conftest import assert_invariants

pytestmark = pytest.mark.django_db(transaction=True)

PHASES = [Phase.explicit, Phase.reuse, Phase.generate]
if os.environ.get("CONCORD_HYPOTHESIS_SHRINK"):
    PHASES.append(Phase.shrink)

FAULTS = {
    "none": {},
    "errors": {"error_rate": 0.5},
    "error_after_commit": {"error_after_commit_rate": 0.5},
    "timeout_after_commit": {"timeout_after_commit_rate": 0.5, "timeout_seconds": 1},
    "declines": {"decline_rate": 0.5},
}
STOCK = 8
_example = itertools.count(1)


def test_random_faults_never_break_the_invariants(psp, saga_policies, settings) -> None:
    settings.PSP_READ_TIMEOUT = 0.3  # an unanswered call costs little
    # A retry waits a minute, which passes only when the `clock_advances` rule
    # says so: a delivery makes at most one attempt, and runs rest mid-saga
    # (e.g. at charge_payment after an unanswered call), where workers die and
    # cancels arrive. Few attempts, so runs reach `failed` too.
    patient = RetryPolicy(max_attempts=3, base_delay=60.0, max_delay=60.0, jitter=0.0)
    saga_policies(provider_retry=patient, local_retry=patient)
    staff = User.objects.create_user("support-h7-prop", password="x", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["retry_run", "compensate_run"]))
    staff = User.objects.get(pk=staff.pk)

    class Checkouts(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            n = next(_example)
            self.skus = [f"P{n}-A", f"P{n}-B"]
            for sku in self.skus:
                ProductFactory(sku=sku, on_hand=STOCK)
            self.initial = dict.fromkeys(self.skus, STOCK)
            self.orders: list[int] = []
            psp.clear_faults()

        # --- rules -----------------------------------------------------------

        @rule(
            quantities=st.tuples(st.integers(0, 3), st.integers(0, 3)).filter(any),
            method=st.sampled_from(["pm_card_ok", "pm_card_ok", "pm_card_ok", "pm_card_declined"]),
            poked=st.booleans(),
        )
        def place(self, quantities, method, poked):
            """A client places an order; usually the on-commit poke reaches a worker
            at once (`poked`), sometimes it is lost."""
            from django.db import transaction

            from orders.services import order_place

            lines = [(sku, q) for sku, q in zip(self.skus, quantities, strict=True) if q]
            with transaction.atomic():
                order = order_place(
                    client_id=1,
                    customer_email="p@example.com",
                    currency="EUR",
                    payment_method=method,
                    lines=lines,
                )
            self.orders.append(order.id)
            if poked:
                advance_run(
                    saga_run_for_subject(saga_type=CHECKOUT, subject_id=str(order.id)).id, worker_id="poke"
                )

        @initialize(kind=st.sampled_from(sorted(FAULTS)))
        def initial_faults(self, kind):
            self.provider_faults(kind)

        @rule(kind=st.sampled_from(sorted(FAULTS)))
        def provider_faults(self, kind):
            psp.set_faults(**FAULTS[kind]) if FAULTS[kind] else psp.clear_faults()

        @precondition(lambda self: self.orders)
        @rule(data=st.data())
        def deliver(self, data):
            """One delivery of `advance` (a duplicate one is just another call)."""
            order_id = data.draw(st.sampled_from(self.orders))
            for saga_type in (CHECKOUT, ORDER_CANCELLATION):
                run = saga_run_for_subject(saga_type=saga_type, subject_id=str(order_id))
                if run is not None:
                    advance_run(run.id, worker_id="prop")

        def _runs(self):
            return SagaRun.objects.filter(subject_id__in=[str(o) for o in self.orders])

        @precondition(lambda self: self.orders)
        @rule()
        def clock_advances(self):
            """Every backoff is over."""
            self._runs().filter(status__in=["running", "compensating"]).update(next_attempt_at=timezone.now())

        @precondition(lambda self: self.orders)
        @rule()
        def support_retries_failed_runs(self):
            for run_id in (
                self._runs().filter(status__in=["failed", "compensation_failed"]).values_list("pk", flat=True)
            ):
                saga_retry_now(run_id=run_id, by=staff, reason="looked at it, try again")

        @precondition(lambda self: self.orders)
        @rule(data=st.data(), call_made=st.booleans())
        def worker_dies_mid_charge(self, data, call_made):
            """A worker took the run for charge_payment and died — after its request
            reached the provider (call_made) or before. Its lease then expires."""
            order_id = data.draw(st.sampled_from(self.orders))
            run = saga_run_for_subject(saga_type=CHECKOUT, subject_id=str(order_id))
            if run is None or run.status != "running" or run.step != "charge_payment" or run.abort_requested:
                return
            if call_made:
                payment = payment_for_order(order_id=order_id)
                payment_charge(payment_id=payment.id)
            SagaRun.objects.filter(pk=run.id).update(
                lease_owner="dead-worker", lease_expires_at=timezone.now() - timedelta(seconds=1)
            )

        @precondition(lambda self: self.orders)
        @rule(data=st.data(), by_staff=st.booleans())
        def cancel(self, data, by_staff):
            from django.db import transaction

            from orders.services import order_request_cancel

            order_id = data.draw(st.sampled_from(self.orders))
            try:
                with transaction.atomic():
                    order_request_cancel(
                        order_id=order_id,
                        by=staff if by_staff else None,
                        reason="random cancel",
                        failure_reason="cancelled_by_staff" if by_staff else "cancelled_by_client",
                    )
            except ConcordError as exc:
                # Only a run a person already resolved may refuse; nothing resolves here.
                raise AssertionError(f"cancel refused: {exc.code}") from exc

        # --- invariants ------------------------------------------------------

        @invariant()
        def money_and_stock_agree(self):
            psp_faults = psp.faults()
            if psp_faults.get("error_rate"):
                # The provider's list endpoint fails too under error_rate; look with faults off.
                psp.clear_faults()
                try:
                    assert_invariants(psp, self.orders, self.initial)
                finally:
                    psp.set_faults(**FAULTS["errors"])
            else:
                assert_invariants(psp, self.orders, self.initial)

        def teardown(self):
            # The provider recovers, time passes, support retries every run that gave up.
            psp.clear_faults()
            for _ in range(30):
                self._runs().filter(lease_owner="dead-worker").update(lease_expires_at=timezone.now())
                self.support_retries_failed_runs()
                self.clock_advances()
                active = list(
                    self._runs().filter(status__in=["running", "compensating"]).values_list("pk", flat=True)
                )
                if not active:
                    break
                for run_id in active:
                    advance_run(run_id, worker_id="recovery")
            for run in self._runs():
                # Invariant 6: every saga ends.
                assert run.status in ("completed", "compensated"), (run.subject_id, run.saga_type, run.status)
                event(f"{run.saga_type} {run.status} {run.failure_code}".strip())
            for order_id in self.orders:
                order = order_get(order_id=order_id)
                assert order.status in ("confirmed", "cancelled"), (order_id, order.status)
                event(f"order {order.status}, payment {payment_for_order(order_id=order_id).status}")
            assert_invariants(psp, self.orders, self.initial)
            connection.close()

    run_state_machine_as_test(
        Checkouts,
        settings=hsettings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            phases=PHASES,
            suppress_health_check=list(HealthCheck),
        ),
    )
