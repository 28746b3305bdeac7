"""The same advance delivered twice at once: one pass runs, one effect."""

import pytest

from sagas.choices import RunStatus
from sagas.executor import NOT_CLAIMED, advance_run
from sagas.selectors import saga_step_log
from tests.fixtures.concurrency import at_once

from . import demo

pytestmark = pytest.mark.django_db(transaction=True)


def race(run_id, n=2):
    return sorted(at_once(n, lambda i: advance_run(run_id, worker_id=f"t{i}")))


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
