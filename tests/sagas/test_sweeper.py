"""The sweeper re-enqueues due runs and runs with expired leases, cheaply."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sagas import tasks
from sagas.choices import RunStatus
from sagas.executor import advance_run
from sagas.models import SagaRun
from sagas.selectors import saga_run_get, saga_runs_due

from . import demo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def enqueued(monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.advance, "delay", lambda run_id: sent.append(run_id))
    return sent


def test_due_runs_and_expired_leases_are_swept(start_run, enqueued):
    now = timezone.now()
    due = start_run("demo.local")
    waiting = start_run("demo.local")
    expired = start_run("demo.local")
    leased = start_run("demo.local")
    done = start_run("demo.local")
    advance_run(done)
    SagaRun.objects.filter(pk=waiting).update(next_attempt_at=now + timedelta(seconds=30))
    SagaRun.objects.filter(pk=expired).update(
        lease_owner="dead/1", lease_expires_at=now - timedelta(seconds=1)
    )
    SagaRun.objects.filter(pk=leased).update(
        lease_owner="alive/1", lease_expires_at=now + timedelta(seconds=30)
    )
    enqueued.clear()  # the on-commit pokes of saga_start

    assert sorted(saga_runs_due()) == sorted([due, expired])
    assert tasks.sweep_due_runs() == 2
    assert sorted(enqueued) == sorted([due, expired])


def test_sweep_does_not_pile_onto_a_run_already_re_enqueued(start_run, enqueued, settings):
    settings.SAGA_SWEEP_REQUEUE_AFTER = 60
    run_id = start_run("demo.local")
    enqueued.clear()

    assert tasks.sweep_due_runs() == 1
    assert tasks.sweep_due_runs() == 0
    assert enqueued == [run_id]


def test_fresh_run_gets_a_head_start_for_its_poke(start_run, enqueued, settings):
    settings.SAGA_SWEEP_GRACE = 60
    start_run("demo.local")

    assert tasks.sweep_due_runs() == 0


def test_sweep_is_a_constant_number_of_queries_with_a_batch_limit(
    start_run, enqueued, settings, django_assert_num_queries
):
    settings.SAGA_SWEEP_BATCH = 3
    for _ in range(5):
        start_run("demo.local")

    with django_assert_num_queries(2):  # one indexed SELECT … LIMIT, one UPDATE (autocommit)
        assert tasks.sweep_due_runs() == 3


def test_lost_poke_is_recovered_by_the_sweeper(start_run, monkeypatch):
    # The on-commit poke never reached a worker; the sweeper delivers instead.
    run_id = start_run("demo.local")
    monkeypatch.setattr(tasks.advance, "delay", lambda run_id: tasks.advance.apply(args=(run_id,)))

    tasks.sweep()

    assert saga_run_get(run_id=run_id).status == RunStatus.COMPLETED
    assert demo.local_effects(run_id) == ["a", "b", "c"]
