"""The statement budget of one happy checkout (docs/benchmarks.md, "Saga throughput"):
every statement the pass sends, counted in-process, so a regression fails."""

from __future__ import annotations

import pytest
from django.db import connection
from django_fsm_log.models import StateLog

from orders.models import Order
from sagas.executor import advance_run
from sagas.models import SagaRun

from .conftest import run_of

pytestmark = pytest.mark.django_db(transaction=True)


class _Recorder:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        self.statements.append(sql)
        return execute(sql, params, many, context)


def _pass(order_id: int) -> list[str]:
    run_id = run_of(order_id).id
    recorder = _Recorder()
    with connection.execute_wrapper(recorder):
        assert advance_run(run_id, worker_id="test") == "completed"
    return recorder.statements


def test_a_happy_checkout_costs_30_statements_no_savepoint_and_audit_rows_in_each_checkpoint(
    psp, shop, place
):
    _pass(place(lines=[("MUG", 1)]))  # warm-up: content types, the provider connection
    order_id = place(lines=[("MUG", 2), ("TEE", 1)])

    statements = _pass(order_id)

    # Per checkout (3 commits; BEGIN/COMMIT are not statements here):
    # reserve 7 — claim (its statement_timeout set in it), lines, stock lock,
    #   reservation check, the counters of both skus (one UPDATE), reservations,
    #   checkpoint (step log, audit rows of the reservations, run: one statement);
    # charge 11 — payment read before the call; run lock, payment lock, charge-id
    #   check, attempt INSERT (the payment is locked: no look-up), payment UPDATE,
    #   ledger (transaction INSERT … ON CONFLICT RETURNING its timestamp,
    #   accounts, entries), event, checkpoint (with the capture's audit row);
    # confirm 12 — run lock, checkout run, order lock (its status decides a
    #   cancelled order: no read before), lines, payment, reservations lock, the
    #   counters of both skus (one UPDATE), reservations UPDATE, movements, order
    #   UPDATE, event, checkpoint (with the audit rows of 2 reservations, the order
    #   and the run).
    # Was 76, with 12 SAVEPOINT/RELEASE pairs and 6 audit INSERTs; 40 before
    # the session of 2026-11-30 afternoon, 34 before its round two, 33 before
    # sagacpu's (docs/benchmarks.md).
    assert len(statements) == 30, "\n".join(statements)
    # The step's statement_timeout rides in the claim and the re-locks: never alone.
    assert not [s for s in statements if s.startswith("SELECT set_config")]
    assert "set_config('statement_timeout'" in statements[0] and "SKIP LOCKED" in statements[0]
    # One counter UPDATE per step whatever the number of skus.
    assert len([s for s in statements if '"inventory_stocklevel" s SET' in s]) == 2
    assert not [s for s in statements if "SAVEPOINT" in s]
    # The audit rows ride in each checkpoint's statement, never alone.
    assert not [s for s in statements if s.startswith(f'INSERT INTO "{StateLog._meta.db_table}"')]
    checkpoints = [s for s in statements if s.startswith("WITH log AS") and "UPDATE sagas_sagarun" in s]
    assert len(checkpoints) == 3
    assert all(f'audit AS (INSERT INTO "{StateLog._meta.db_table}"' in s for s in checkpoints)
    # ... and the audit trail is complete: 2 reservations held and committed, the
    # payment captured, the order confirmed, the run completed.
    order = Order.objects.get(pk=order_id)
    assert order.status == "confirmed"
    run = SagaRun.objects.get(pk=run_of(order_id).id)
    assert StateLog.objects.for_(run).filter(state="completed").count() == 1
    assert StateLog.objects.for_(order).filter(state="confirmed").count() == 1
    transitions = sorted(
        StateLog.objects.filter(transition__in=["reserve", "commit", "capture"]).values_list(
            "transition", flat=True
        )
    )
    assert transitions.count("reserve") == 3 and transitions.count("commit") == 3  # with the warm-up's
    assert transitions.count("capture") == 2
