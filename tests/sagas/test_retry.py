"""Transient failures retry with backoff through next_attempt_at; attempts run
out into `failed`, which is listed as stuck until a person retries."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from django_fsm_log.models import StateLog

from sagas.choices import RunStatus, StepOutcome
from sagas.definition import RetryPolicy
from sagas.executor import NOT_CLAIMED, advance_run
from sagas.selectors import saga_run_get, saga_runs_stuck, saga_step_log
from sagas.services import saga_retry_now

from . import demo

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until_due(run_id):
    run = saga_run_get(run_id=run_id)
    time.sleep(max((run.next_attempt_at - timezone.now()).total_seconds(), 0) + 0.01)


def test_backoff_is_exponential_capped_and_jittered():
    policy = RetryPolicy(max_attempts=10, base_delay=0.5, max_delay=3.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = RetryPolicy(base_delay=1.0, max_delay=1.0, jitter=0.5)
    delays = {jittered.delay(1) for _ in range(50)}
    assert all(0.5 <= d <= 1.0 for d in delays) and len(delays) > 1


def test_transient_failure_waits_in_the_database_then_completes(start_run, monkeypatch):
    run_id = start_run("demo.local")
    demo.plan(run_id, "b", "retry", "retry")
    # Retry timing must never ride on Celery ETAs/countdowns.
    sent = []
    monkeypatch.setattr("sagas.tasks.advance.apply_async", lambda *a, **kw: sent.append((a, kw)))

    before = timezone.now()
    assert advance_run(run_id) == RunStatus.RUNNING
    run = saga_run_get(run_id=run_id)
    assert (run.step, run.attempts, run.lease_owner) == ("b", 1, "")
    assert "planned transient failure" in run.last_error
    # demo's FAST policy: base 0.2 s, no jitter.
    assert before + timedelta(seconds=0.2) <= run.next_attempt_at <= timezone.now() + timedelta(seconds=0.2)
    # Not due yet: a second delivery does nothing.
    assert advance_run(run_id) == NOT_CLAIMED

    wait_until_due(run_id)
    assert advance_run(run_id) == RunStatus.RUNNING
    run = saga_run_get(run_id=run_id)
    assert run.attempts == 2
    assert timedelta(seconds=0.39) <= run.next_attempt_at - run.updated_at <= timedelta(seconds=0.41)

    wait_until_due(run_id)
    assert advance_run(run_id) == RunStatus.COMPLETED
    assert [(r.step, r.attempt, r.outcome) for r in saga_step_log(run_id=run_id)] == [
        ("a", 1, StepOutcome.DONE),
        ("b", 1, StepOutcome.RETRY),
        ("b", 2, StepOutcome.RETRY),
        ("b", 3, StepOutcome.DONE),
        ("c", 1, StepOutcome.DONE),
    ]
    assert demo.local_effects(run_id) == ["a", "b", "c"]
    assert sent == []


def test_exception_in_a_step_is_a_retryable_failure(start_run):
    run_id = start_run("demo.local")
    demo.plan(run_id, "a", "raise")

    advance_run(run_id)

    run = saga_run_get(run_id=run_id)
    assert run.status == RunStatus.RUNNING and run.attempts == 1
    assert run.last_error == "RuntimeError: planned crash"
    assert saga_step_log(run_id=run_id)[0].outcome == StepOutcome.ERROR


def test_attempts_exhausted_fail_the_run_then_a_manual_retry_completes_it(start_run, staff_user):
    run_id = start_run("demo.local")
    demo.plan(run_id, "b", "retry", "retry", "retry")

    for _ in range(3):
        advance_run(run_id)
        if saga_run_get(run_id=run_id).status == RunStatus.FAILED:
            break
        wait_until_due(run_id)

    run = saga_run_get(run_id=run_id)
    assert (run.status, run.step, run.attempts, run.next_attempt_at) == (RunStatus.FAILED, "b", 3, None)
    assert run_id in [r.id for r in saga_runs_stuck()]
    transition = StateLog.objects.get(object_id=run_id, state=RunStatus.FAILED)
    assert transition.by is None and "3 attempts failed" in transition.description
    # Failed runs are not picked up by the executor any more.
    assert advance_run(run_id) == NOT_CLAIMED

    # The "provider" recovered (the plan is used up); a person retries.
    saga_retry_now(run_id=run_id, by=staff_user, reason="provider is back")
    assert advance_run(run_id) == RunStatus.COMPLETED
    assert run_id not in [r.id for r in saga_runs_stuck()]
    assert demo.local_effects(run_id) == ["a", "b", "c"]


def test_active_run_past_its_sla_is_stuck(start_run):
    run_id = start_run("demo.quick")  # SLA of one second
    demo.plan(run_id, "fast_local", "retry")
    advance_run(run_id)

    assert run_id not in [r.id for r in saga_runs_stuck()]
    assert run_id in [r.id for r in saga_runs_stuck(now=timezone.now() + timedelta(seconds=2))]
