"""Delivery: duplicate deliveries, the commit budget (in-process, real PostgreSQL),
and real worker processes for on-commit pokes, lost pokes and a killed worker."""

import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from orders.selectors import order_get
from payments.selectors import payment_for_order, provider_attempts_for_payment
from sagas.executor import advance_run
from sagas.models import SagaRun
from sagas.selectors import saga_step_log
from tests.fixtures.concurrency import at_once
from tests.fixtures.worker import purge_default_queue

from .conftest import assert_invariants, provider_charges, run_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_same_advance_delivered_twice_at_once_has_one_effect(psp, shop, place):
    psp.set_faults(latency_ms=300)  # keeps the first pass inside the charge for a while
    order_id = place(lines=[("MUG", 1)])
    run_id = run_of(order_id).id
    results = at_once(2, lambda i: advance_run(run_id, worker_id=f"w{i}"))

    assert sorted(results) == ["completed", "not_claimed"]
    assert len(provider_charges(psp, order_id)) == 1
    payment = payment_for_order(order_id=order_id)
    assert len(provider_attempts_for_payment(payment_id=payment.id)) == 1
    assert [s.step for s in saga_step_log(run_id=run_id)] == [
        "reserve_stock",
        "charge_payment",
        "confirm_order",
    ]
    assert_invariants(psp, [order_id], shop)


def test_a_happy_checkout_costs_one_commit_per_step(psp, shop, place):
    order_id = place(lines=[("MUG", 1), ("TEE", 1)])
    run_id = run_of(order_id).id
    commits = 0
    autocommit_writes: list[str] = []
    db = connections["default"]
    original = db.commit

    def counting_commit():
        nonlocal commits
        commits += 1
        return original()

    def spy(execute, sql, params, many, context):
        if not context["connection"].in_atomic_block and sql.lstrip().split(None, 1)[0].upper() in {
            "INSERT",
            "UPDATE",
            "DELETE",
        }:
            autocommit_writes.append(sql)
        return execute(sql, params, many, context)

    db.commit = counting_commit
    try:
        with db.execute_wrapper(spy):
            assert advance_run(run_id, worker_id="budget") == "completed"
    finally:
        db.commit = original

    # DESIGN §7: one commit per step. The lease rides in reserve_stock's commit;
    # the provider attempt and the capture (with its ledger posting) ride in
    # charge_payment's checkpoint (the step's apply), written after the call.
    assert (commits, autocommit_writes) == (3, [])
    assert order_get(order_id=order_id).status == "confirmed"
    payment = payment_for_order(order_id=order_id)
    assert payment.status == "captured"
    assert [a.outcome for a in provider_attempts_for_payment(payment_id=payment.id)] == ["succeeded"]
    assert_invariants(psp, [order_id], shop)


class _WorkerDied(BaseException):
    """Not an Exception: like a SIGKILL, nothing in the executor handles it."""


def test_a_worker_dying_after_the_charge_before_its_checkpoint_loses_nothing(psp, shop, place, monkeypatch):
    # given: the provider charges, then the worker dies before the checkpoint commits
    order_id = place(lines=[("MUG", 1)])
    run_id = run_of(order_id).id

    def die(**kwargs):
        raise _WorkerDied

    monkeypatch.setattr("orders.sagas.payment_charge_record", die)
    with pytest.raises(_WorkerDied):
        advance_run(run_id, worker_id="doomed")
    monkeypatch.undo()
    assert len(provider_charges(psp, order_id)) == 1
    payment = payment_for_order(order_id=order_id)
    assert payment.status == "pending"  # the answer was never recorded
    assert run_of(order_id).step == "charge_payment"

    # when: its lease expires and another pass takes the run
    SagaRun.objects.filter(pk=run_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert advance_run(run_id, worker_id="rescuer") == "completed"

    # then: the same key made the provider replay its one charge
    charges = provider_charges(psp, order_id)
    assert len(charges) == 1
    payment = payment_for_order(order_id=order_id)
    assert payment.status == "captured" and payment.provider_charge_id == charges[0]["id"]
    outcomes = [(s.step, s.outcome) for s in saga_step_log(run_id=run_id)]
    assert outcomes == [
        ("reserve_stock", "done"),
        ("charge_payment", "lease_expired"),
        ("charge_payment", "done"),
        ("confirm_order", "done"),
    ]
    assert order_get(order_id=order_id).status == "confirmed"
    assert_invariants(psp, [order_id], shop)


# --- real workers ------------------------------------------------------------------


def _worker_env(psp, **extra) -> dict[str, str]:
    return {
        "PSP_BASE_URL": psp.base_url,
        "PSP_API_KEY": psp.api_key,
        "PSP_CONNECT_TIMEOUT": "1",
        "PSP_READ_TIMEOUT": "3",
        **extra,
    }


def test_the_on_commit_poke_reaches_a_worker_which_completes_the_checkout(
    psp, shop, place, celery_worker_factory
):
    celery_worker_factory(env=_worker_env(psp))
    order_id = place(lines=[("MUG", 1)])
    wait_for(lambda: order_get(order_id=order_id).status == "confirmed", timeout=30, what="confirmation")
    assert run_of(order_id).status == "completed"
    assert len(provider_charges(psp, order_id)) == 1
    assert_invariants(psp, [order_id], shop)


def test_a_burst_of_orders_is_checked_out_by_the_workers_without_the_sweeper(
    psp, shop, place, celery_worker_factory
):
    # Two workers, no beat (no sweeper): every checkout is started by start_fresh,
    # poked once per burst of commits, which spreads the runs over both workers.
    celery_worker_factory("w1", env=_worker_env(psp))
    celery_worker_factory("w2", env=_worker_env(psp))
    order_ids = [place(lines=[("MUG" if n % 2 else "TEE", 1)]) for n in range(8)]

    wait_for(
        lambda: all(order_get(order_id=o).status == "confirmed" for o in order_ids),
        timeout=60,
        what="the burst",
    )
    for order_id in order_ids:
        assert run_of(order_id).status == "completed"
        assert len(provider_charges(psp, order_id)) == 1
    workers = {
        row.worker.split("@")[0]
        for order_id in order_ids
        for row in saga_step_log(run_id=run_of(order_id).id)
    }
    assert workers == {"w1-0", "w2-1"}
    assert_invariants(psp, order_ids, shop)


def test_a_lost_poke_is_found_by_the_sweeper(psp, shop, place, celery_worker_factory):
    order_id = place(lines=[("TEE", 1)])
    purge_default_queue()  # the poke is lost: no message points at the run any more

    celery_worker_factory(env=_worker_env(psp), beat=True)

    wait_for(lambda: order_get(order_id=order_id).status == "confirmed", timeout=30, what="the sweeper")
    assert len(provider_charges(psp, order_id)) == 1
    assert_invariants(psp, [order_id], shop)


def test_a_worker_killed_inside_charge_payment_is_replaced_after_its_lease_expires(
    psp, shop, place, celery_worker_factory
):
    # given: the provider is slow, so the worker is inside the charge call when it dies
    psp.set_faults(latency_ms=1500)
    first = celery_worker_factory("doomed", env=_worker_env(psp))
    order_id = place(lines=[("MUG", 1)])
    wait_for(
        lambda: run_of(order_id).step == "charge_payment" and run_of(order_id).lease_owner != "",
        timeout=30,
        what="the charge to start",
    )
    time.sleep(0.3)  # the request is at the provider

    # when: SIGKILL mid-call; a fresh worker with the sweeper takes over
    first.kill()
    lease_owner = run_of(order_id).lease_owner
    assert lease_owner.startswith("doomed")
    psp.clear_faults()
    celery_worker_factory("rescuer", env=_worker_env(psp), beat=True)

    # then: the lease expires (step timeout + margin), the step runs again with the
    # same key, and the provider replays its one charge
    wait_for(lambda: order_get(order_id=order_id).status == "confirmed", timeout=40, what="the rescue")
    charges = provider_charges(psp, order_id)
    assert len(charges) == 1
    payment = payment_for_order(order_id=order_id)
    assert payment.provider_charge_id == charges[0]["id"]
    outcomes = [(s.step, s.outcome) for s in saga_step_log(run_id=run_of(order_id).id)]
    assert ("charge_payment", "lease_expired") in outcomes
    assert outcomes[-1] == ("confirm_order", "done")
    assert_invariants(psp, [order_id], shop)
