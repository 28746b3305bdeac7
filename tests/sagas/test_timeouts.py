"""A step that exceeds its timeout counts as a retryable failure."""

import pytest

from sagas.choices import RunStatus, StepOutcome
from sagas.executor import advance_run
from sagas.selectors import saga_run_get, saga_step_log

from . import demo

pytestmark = pytest.mark.django_db(transaction=True)


def test_slow_local_step_times_out_and_its_writes_roll_back(start_run):
    run_id = start_run("demo.quick")  # fast_local: timeout 0.5 s
    demo.plan(run_id, "fast_local", "sleep:0.7")

    assert advance_run(run_id) == RunStatus.RUNNING

    row = saga_step_log(run_id=run_id)[0]
    assert row.outcome == StepOutcome.TIMEOUT and row.duration_ms >= 700
    assert "timeout is 0.5s" in row.error
    assert demo.local_effects(run_id) == []  # the effect was written, then rolled back
    assert saga_run_get(run_id=run_id).attempts == 1


def test_slow_sql_is_cut_by_statement_timeout(start_run):
    run_id = start_run("demo.quick")
    demo.plan(run_id, "fast_local", "dbsleep:5")

    advance_run(run_id)

    row = saga_step_log(run_id=run_id)[0]
    assert row.outcome == StepOutcome.TIMEOUT
    assert row.error.startswith("statement timeout")
    assert row.duration_ms < 2000  # PostgreSQL cancelled it at 0.5 s, not 5


def test_statement_timeout_does_not_leak_to_the_checkpoint_or_next_transaction(start_run):
    from django.db import connection

    run_id = start_run("demo.quick")
    advance_run(run_id)
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


def test_slow_external_step_times_out_even_if_it_reported_done(start_run):
    run_id = start_run("demo.quick")
    demo.plan(run_id, "fast_external", "sleep:0.7")

    assert advance_run(run_id) == RunStatus.RUNNING

    log = saga_step_log(run_id=run_id)
    assert [(r.step, r.outcome) for r in log] == [
        ("fast_local", StepOutcome.DONE),
        ("fast_external", StepOutcome.TIMEOUT),
    ]
    # The effect happened; the retry finds it by the idempotency key: still once.
    import time

    time.sleep(0.25)
    assert advance_run(run_id) == RunStatus.COMPLETED
    assert demo.external_effects(run_id) == ["fast_external"]
    assert demo.calls(run_id, "fast_external") == 2
