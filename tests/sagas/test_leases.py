"""Leases: an expired lease is taken over (and counted as an attempt); a pass
that lost its lease discards its result."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from sagas.choices import RunStatus, StepOutcome
from sagas.executor import LEASE_LOST, NOT_CLAIMED, advance_run
from sagas.models import SagaRun
from sagas.selectors import saga_run_get, saga_step_log

from . import demo

pytestmark = pytest.mark.django_db(transaction=True)


def test_live_lease_blocks_other_passes(start_run):
    run_id = start_run("demo.local")
    SagaRun.objects.filter(pk=run_id).update(
        lease_owner="other:1/abc", lease_expires_at=timezone.now() + timedelta(seconds=30)
    )

    assert advance_run(run_id) == NOT_CLAIMED
    assert demo.calls(run_id, "a") == 0


def test_expired_lease_is_taken_over_and_counted(start_run):
    # What a worker killed mid-step leaves behind.
    run_id = start_run("demo.local")
    SagaRun.objects.filter(pk=run_id).update(
        lease_owner="dead:1/abc", lease_expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert advance_run(run_id) == RunStatus.COMPLETED

    log = saga_step_log(run_id=run_id)
    assert [(r.step, r.attempt, r.outcome, r.worker) for r in log[:2]] == [
        ("a", 1, StepOutcome.LEASE_EXPIRED, "dead:1/abc"),
        ("a", 2, StepOutcome.DONE, log[1].worker),
    ]


def test_a_step_that_keeps_killing_its_worker_ends_failed(start_run):
    run_id = start_run("demo.local")  # FAST policy: 3 attempts
    SagaRun.objects.filter(pk=run_id).update(
        attempts=2, lease_owner="dead:1/abc", lease_expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert advance_run(run_id) == RunStatus.FAILED
    assert demo.calls(run_id, "a") == 0


def test_pass_that_lost_its_lease_discards_its_result(start_run):
    run_id = start_run("demo.external_first")
    demo.plan(run_id, "x", "sleep:0.5")
    result = {}

    def slow_pass():
        result["status"] = advance_run(run_id)
        connections.close_all()

    thread = threading.Thread(target=slow_pass)
    thread.start()
    time.sleep(0.2)
    # Another pass took the run over (as after an expiry) while x was running.
    SagaRun.objects.filter(pk=run_id).update(
        lease_owner="successor:1/def", lease_expires_at=timezone.now() + timedelta(seconds=30)
    )
    thread.join(10)

    assert result["status"] == LEASE_LOST
    run = saga_run_get(run_id=run_id)
    assert (run.step, run.lease_owner) == ("x", "successor:1/def")
    assert saga_step_log(run_id=run_id) == []  # no checkpoint by the stale pass
