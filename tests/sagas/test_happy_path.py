"""A run goes through all its steps in one pass, one commit per step."""

import pytest
from django_fsm_log.models import StateLog

from sagas.choices import RunStatus, StepOutcome
from sagas.executor import NOT_CLAIMED, advance_run
from sagas.selectors import saga_run_get, saga_step_log

from . import demo

pytestmark = pytest.mark.django_db(transaction=True)


def test_local_steps_complete_in_one_pass(start_run):
    run_id = start_run("demo.local", context={"order": 7})

    assert advance_run(run_id) == RunStatus.COMPLETED

    run = saga_run_get(run_id=run_id)
    assert run.status == RunStatus.COMPLETED
    assert run.lease_owner == "" and run.lease_expires_at is None and run.next_attempt_at is None
    # Each step's data merged into the context, the start context kept.
    assert run.context == {"order": 7, "a_attempt": 1, "b_attempt": 1, "c_attempt": 1}
    assert demo.local_effects(run_id) == ["a", "b", "c"]
    log = saga_step_log(run_id=run_id)
    assert [(row.step, row.direction, row.attempt, row.outcome) for row in log] == [
        ("a", "forward", 1, StepOutcome.DONE),
        ("b", "forward", 1, StepOutcome.DONE),
        ("c", "forward", 1, StepOutcome.DONE),
    ]
    assert all(row.worker for row in log)
    assert StateLog.objects.filter(object_id=run_id, state=RunStatus.COMPLETED).count() == 1


def test_finished_run_is_not_claimed_again(start_run):
    run_id = start_run("demo.local")
    advance_run(run_id)

    assert advance_run(run_id) == NOT_CLAIMED
    assert demo.calls(run_id, "a") == 1


def test_three_local_steps_cost_three_commits(start_run, count_commits):
    run_id = start_run("demo.local")

    with count_commits() as counter:
        assert advance_run(run_id) == RunStatus.COMPLETED

    # Lease taken in step a's commit, released in step c's: exactly one per step.
    assert counter.commits == 3
    assert counter.autocommit_writes == []


def test_checkout_shaped_run_costs_one_commit_per_step(start_run, count_commits):
    # local, external, local: the external call runs between two commits.
    run_id = start_run("demo.mixed")

    with count_commits() as counter:
        assert advance_run(run_id) == RunStatus.COMPLETED

    assert counter.commits == 3
    assert counter.autocommit_writes == []
    assert demo.external_effects(run_id) == ["b"]
    assert demo.local_effects(run_id) == ["a", "c"]


def test_pass_starting_at_an_external_step_needs_one_lease_commit(start_run, count_commits):
    run_id = start_run("demo.external_first")

    with count_commits() as counter:
        assert advance_run(run_id) == RunStatus.COMPLETED

    assert counter.commits == 4  # lease + 3 steps
    assert counter.autocommit_writes == []
