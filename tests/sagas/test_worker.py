"""Real Celery worker processes: delivery is the point here."""

import time

import pytest
from django.db import transaction

from sagas import tasks
from sagas.choices import RunStatus, StepOutcome
from sagas.selectors import saga_run_get, saga_step_log
from sagas.services import saga_start

from . import demo

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for_status(run_id, *statuses, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = saga_run_get(run_id=run_id)
        if run.status in statuses:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is {saga_run_get(run_id=run_id).status}, wanted {statuses}")


def test_on_commit_poke_makes_the_worker_complete_the_run(celery_worker):
    with transaction.atomic():
        run_id = saga_start(saga_type="demo.mixed", subject_id="order-1")

    run = wait_for_status(run_id, RunStatus.COMPLETED)
    assert run.lease_owner == ""
    assert demo.external_effects(run_id) == ["b"]
    assert {row.worker.split("@")[0] for row in saga_step_log(run_id=run_id)} == {"w1-0"}


def test_lost_poke_is_found_by_the_sweeper(celery_worker, monkeypatch):
    monkeypatch.setattr(tasks.start_fresh, "delay", lambda: None)  # the poke is lost
    with transaction.atomic():
        run_id = saga_start(saga_type="demo.mixed", subject_id="order-2")
    time.sleep(0.5)
    assert saga_run_get(run_id=run_id).status == RunStatus.RUNNING  # nobody was told
    monkeypatch.undo()

    assert tasks.sweep_due_runs() == 1

    wait_for_status(run_id, RunStatus.COMPLETED)
    assert demo.external_effects(run_id) == ["b"]


def test_a_burst_of_runs_is_started_by_one_poke_and_spread_over_the_workers(celery_worker_factory):
    celery_worker_factory("w1", imports=["tests.sagas.demo"])
    celery_worker_factory("w2", imports=["tests.sagas.demo"])
    # No beat: no sweeper, so every run is started by start_fresh's pokes.
    run_ids = []
    for n in range(10):
        with transaction.atomic():
            run_ids.append(saga_start(saga_type="demo.mixed", subject_id=f"burst-{n}"))

    for run_id in run_ids:
        wait_for_status(run_id, RunStatus.COMPLETED)
        assert demo.external_effects(run_id) == ["b"]
    workers = {row.worker.split("@")[0] for r in run_ids for row in saga_step_log(run_id=r)}
    assert workers == {"w1-0", "w2-1"}


def test_worker_killed_mid_step_another_worker_finishes_exactly_once(celery_worker_factory):
    first = celery_worker_factory("first", imports=["tests.sagas.demo"])
    with transaction.atomic():
        run_id = saga_start(saga_type="demo.mixed", subject_id="order-3")
        # b makes its effect, then hangs: the worker dies before the checkpoint.
        demo.plan(run_id, "b", "effect_then_sleep:30")

    deadline = time.monotonic() + 20
    while demo.external_effects(run_id) != ["b"]:
        assert time.monotonic() < deadline, first.log()[-3000:]
        time.sleep(0.05)
    first.kill()
    leased = saga_run_get(run_id=run_id)
    assert leased.lease_owner.startswith("first-0@") and leased.step == "b"

    # A second worker with the sweeper on its beat: once the lease (b's 3 s timeout
    # + 1 s margin) expires, the sweeper re-enqueues the run and b runs again.
    celery_worker_factory("second", imports=["tests.sagas.demo"], beat=True)
    run = wait_for_status(run_id, RunStatus.COMPLETED, timeout=30)

    assert demo.external_effects(run_id) == ["b"]  # the effect exactly once
    assert demo.calls(run_id, "b") == 2  # though the step ran twice
    log = [(r.step, r.outcome, r.worker.split("@")[0]) for r in saga_step_log(run_id=run_id)]
    assert log == [
        ("a", StepOutcome.DONE, "first-0"),
        ("b", StepOutcome.LEASE_EXPIRED, "first-0"),
        ("b", StepOutcome.DONE, "second-1"),
        ("c", StepOutcome.DONE, "second-1"),
    ]
    assert run.lease_owner == ""
