"""The same advance delivered twice at once: one pass runs, one effect."""

import threading

import pytest
from django.db import connections

from sagas.choices import RunStatus
from sagas.executor import NOT_CLAIMED, advance_run
from sagas.selectors import saga_step_log

from . import demo

pytestmark = pytest.mark.django_db(transaction=True)


def race(run_id, n=2):
    barrier = threading.Barrier(n)
    results = []

    def deliver():
        try:
            barrier.wait(5)
            results.append(advance_run(run_id, worker_id=threading.current_thread().name))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deliver, name=f"t{i}") for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    return sorted(results)


def test_two_deliveries_of_a_local_step_run_it_once(start_run):
    # a holds the row lock for 0.5 s: the other delivery skips the locked row.
    run_id = start_run("demo.local")
    demo.plan(run_id, "a", "sleep:0.5")

    assert race(run_id) == sorted([RunStatus.COMPLETED, NOT_CLAIMED])

    assert demo.calls(run_id, "a") == 1
    assert [r.step for r in saga_step_log(run_id=run_id)] == ["a", "b", "c"]


def test_two_deliveries_of_an_external_step_run_it_once(start_run):
    # x holds no lock during its call, only the committed lease.
    run_id = start_run("demo.external_first")
    demo.plan(run_id, "x", "sleep:0.5")

    assert race(run_id, n=3) == sorted([RunStatus.COMPLETED, NOT_CLAIMED, NOT_CLAIMED])

    assert demo.calls(run_id, "x") == 1
    assert demo.external_effects(run_id) == ["x"]
