"""An external step's `apply`: the call runs with no transaction open; what it
established is written inside the step's checkpoint (one commit per step)."""

import time

import pytest

from sagas.choices import RunStatus, StepOutcome
from sagas.definition import Step, done
from sagas.executor import advance_run
from sagas.selectors import saga_run_get, saga_step_log

from . import demo

pytestmark = pytest.mark.django_db(transaction=True)


def _outcomes(run_id: int) -> list[tuple[str, str, str]]:
    return [(row.step, row.direction, row.outcome) for row in saga_step_log(run_id=run_id)]


def test_apply_rides_in_the_checkpoint_one_commit_per_step(start_run, count_commits):
    run_id = start_run("demo.recorded")

    with count_commits() as counter:
        assert advance_run(run_id) == RunStatus.COMPLETED

    assert counter.commits == 3
    assert counter.autocommit_writes == []
    assert demo.external_effects(run_id) == ["b"]
    assert demo.local_effects(run_id) == ["a", "c", "recorded_1_done"]
    assert saga_run_get(run_id=run_id).context["b_attempt"] == 1


def test_what_apply_records_commits_even_when_the_step_fails(start_run):
    # A declined charge is a fact to keep, although the run compensates.
    run_id = start_run("demo.recorded")
    demo.plan(run_id, "b", "fail")

    assert advance_run(run_id) == RunStatus.COMPENSATED

    assert demo.local_effects(run_id) == ["a", "compensated", "recorded_1_fail", "undo_a"]
    assert _outcomes(run_id)[1] == ("b", "forward", StepOutcome.FAIL)


def test_apply_that_raises_is_rolled_back_and_the_step_retried(start_run):
    run_id = start_run("demo.recorded")
    demo.plan(run_id, "b", "raise", direction="apply")

    advance_run(run_id)  # the retry is due after FAST's backoff
    run = saga_run_get(run_id=run_id)
    assert (run.status, run.step, run.attempts) == (RunStatus.RUNNING, "b", 1)
    assert "planned crash in apply" in run.last_error
    assert "apply_rolled_back" not in demo.local_effects(run_id)

    time.sleep(0.25)
    assert advance_run(run_id) == RunStatus.COMPLETED
    # The call ran twice with one idempotency key: one external effect.
    assert demo.calls(run_id, "b") == 2
    assert demo.external_effects(run_id) == ["b"]
    assert demo.local_effects(run_id) == ["a", "c", "recorded_2_done"]
    assert [o for _, _, o in _outcomes(run_id)] == [
        StepOutcome.DONE,
        StepOutcome.ERROR,
        StepOutcome.DONE,
        StepOutcome.DONE,
    ]


def test_apply_is_only_for_external_steps():
    with pytest.raises(ValueError, match="apply"):
        Step("local", lambda ctx: done(), apply=lambda ctx, call: call)
