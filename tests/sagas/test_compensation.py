"""A permanent failure compensates the earlier steps in reverse order."""

import pytest

from sagas.choices import RunStatus, StepOutcome
from sagas.executor import advance_run
from sagas.selectors import saga_run_get, saga_runs_stuck, saga_step_log

from . import demo
from .test_retry import wait_until_due

pytestmark = pytest.mark.django_db(transaction=True)


def test_permanent_failure_compensates_in_reverse(start_run):
    run_id = start_run("demo.mixed")
    demo.plan(run_id, "c", "fail")

    assert advance_run(run_id) == RunStatus.COMPENSATED

    run = saga_run_get(run_id=run_id)
    assert (run.direction, run.failure_code, run.lease_owner) == ("compensate", "demo_failed", "")
    assert [(r.step, r.direction, r.outcome) for r in saga_step_log(run_id=run_id)] == [
        ("a", "forward", StepOutcome.DONE),
        ("b", "forward", StepOutcome.DONE),
        ("c", "forward", StepOutcome.FAIL),
        # c failed, so it left nothing to undo: b then a.
        ("b", "compensate", StepOutcome.DONE),
        ("a", "compensate", StepOutcome.DONE),
    ]
    assert demo.external_effects(run_id) == ["b", "undo_b"]
    assert demo.local_effects(run_id) == ["a", "compensated", "undo_a"]
    assert demo.compensated_with(run_id) == "demo_failed"


def test_failure_of_the_first_step_compensates_nothing_in_one_commit(start_run, count_commits):
    run_id = start_run("demo.local")
    demo.plan(run_id, "a", "fail")

    with count_commits() as counter:
        assert advance_run(run_id) == RunStatus.COMPENSATED

    assert counter.total == 1
    assert demo.compensated_with(run_id) == "demo_failed"
    assert demo.local_effects(run_id) == ["compensated"]


def test_failed_step_writes_roll_back(start_run):
    run_id = start_run("demo.local")
    demo.plan(run_id, "b", "fail")
    advance_run(run_id)

    # b wrote nothing: a's effect was undone and b's never existed.
    assert demo.local_effects(run_id) == ["a", "compensated", "undo_a"]


def test_compensation_attempts_exhausted_end_in_compensation_failed(start_run):
    run_id = start_run("demo.local")
    demo.plan(run_id, "c", "fail")
    demo.plan(run_id, "b", "retry", "retry", "retry", direction="compensate")

    for _ in range(3):
        advance_run(run_id)
        if saga_run_get(run_id=run_id).status == RunStatus.COMPENSATION_FAILED:
            break
        wait_until_due(run_id)

    run = saga_run_get(run_id=run_id)
    assert (run.status, run.step, run.direction, run.attempts) == (
        RunStatus.COMPENSATION_FAILED,
        "b",
        "compensate",
        3,
    )
    assert run_id in [r.id for r in saga_runs_stuck()]
    assert demo.compensated_with(run_id) is None
    assert demo.local_effects(run_id) == ["a", "b"]  # nothing undone yet: a person must act


def test_permanent_failure_of_a_compensation_needs_a_person(start_run):
    run_id = start_run("demo.local")
    demo.plan(run_id, "c", "fail")
    demo.plan(run_id, "b", "fail", direction="compensate")

    assert advance_run(run_id) == RunStatus.COMPENSATION_FAILED
