"""sagas.start_fresh: fresh runs are started by one coalesced poke per burst, not
one message per run; what it claims, in which order, and that it cannot miss a run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from sagas import tasks
from sagas.choices import RunStatus
from sagas.executor import advance_run
from sagas.models import SagaRun
from sagas.selectors import saga_run_get, saga_runs_fresh
from sagas.services import saga_start

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch):
    """What would go to the broker: ("advance", run_id) and ("start_fresh", None)."""
    messages: list[tuple[str, int | None]] = []
    monkeypatch.setattr(tasks.advance, "delay", lambda run_id: messages.append(("advance", run_id)))
    monkeypatch.setattr(tasks.start_fresh, "delay", lambda: messages.append(("start_fresh", None)))
    return messages


def test_saga_start_pokes_start_fresh_once_per_transaction_and_no_advance(sent):
    with transaction.atomic():
        first = saga_start(saga_type="demo.local", subject_id="s-1")
        second = saga_start(saga_type="demo.local", subject_id="s-2")
    assert sent == [("start_fresh", None)]
    assert saga_runs_fresh() == [first, second]


def test_the_coalescing_flag_swallows_later_pokes_until_start_fresh_clears_it(sent, start_run):
    start_run("demo.local")
    start_run("demo.local")
    assert sent == [("start_fresh", None)]
    tasks.poke_clear(tasks.FRESH_POKE_KEY)  # what start_fresh does first
    start_run("demo.local")
    assert sent == [("start_fresh", None), ("start_fresh", None)]


def test_starting_an_existing_run_again_pokes_that_run(sent, start_run):
    run_id = start_run("demo.local", subject_id="again")
    advance_run(run_id)  # past its first step: start_fresh would not look at it
    sent.clear()
    assert start_run("demo.local", subject_id="again") == run_id
    assert sent == [("advance", run_id)]


def test_claim_takes_only_fresh_due_runs_and_marks_them(start_run, sent):
    now = timezone.now()
    fresh = [start_run("demo.local") for _ in range(3)]
    later = start_run("demo.local")
    leased = start_run("demo.local")
    swept = start_run("demo.local")
    started = start_run("demo.local")
    advance_run(started)
    SagaRun.objects.filter(pk=later).update(next_attempt_at=now + timedelta(seconds=30))
    SagaRun.objects.filter(pk=leased).update(lease_owner="w/1", lease_expires_at=now + timedelta(seconds=30))
    SagaRun.objects.filter(pk=swept).update(swept_at=now)

    assert saga_runs_fresh() == fresh
    assert tasks.claim_fresh_runs(limit=2) == fresh[:2]  # oldest first, at most the limit
    assert tasks.claim_fresh_runs(limit=10) == fresh[2:]
    assert tasks.claim_fresh_runs(limit=10) == []  # claimed once: a second pass sends nothing twice
    assert saga_runs_fresh() == []
    assert all(SagaRun.objects.get(pk=pk).swept_at is not None for pk in fresh)


def test_the_claim_uses_the_fresh_runs_index(start_run):
    start_run("demo.local")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: make the planner show its index
        cursor.execute(
            "EXPLAIN SELECT id FROM sagas_sagarun WHERE status = 'running' AND direction = 'forward' "
            "AND step_index = 0 AND attempts = 0 AND lease_owner = '' AND swept_at IS NULL "
            "AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT 500"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "sagas_run_fresh" in plan


def test_start_fresh_publishes_the_rest_and_runs_the_oldest_itself(start_run, sent):
    runs = [start_run("demo.local") for _ in range(4)]
    sent.clear()

    assert tasks.start_fresh.apply().get() == 4

    assert sent == [("advance", run_id) for run_id in runs[1:]]
    assert saga_run_get(run_id=runs[0]).status == RunStatus.COMPLETED
    assert {saga_run_get(run_id=r).status for r in runs[1:]} == {RunStatus.RUNNING}


def test_start_fresh_clears_the_flag_before_it_reads(start_run, sent, monkeypatch):
    start_run("demo.local")
    assert cache.get(tasks.FRESH_POKE_KEY) is not None
    seen: list[object] = []
    claim = tasks.claim_fresh_runs

    def claim_and_look(*, limit):
        seen.append(cache.get(tasks.FRESH_POKE_KEY))
        return claim(limit=limit)

    monkeypatch.setattr(tasks, "claim_fresh_runs", claim_and_look)
    tasks.start_fresh.apply()
    assert seen == [None]


def test_a_full_batch_asks_for_another_pass(start_run, sent, settings):
    settings.SAGA_SWEEP_BATCH = 2
    runs = [start_run("demo.local") for _ in range(3)]
    tasks.poke_clear(tasks.FRESH_POKE_KEY)
    sent.clear()

    assert tasks.start_fresh.apply().get() == 2
    assert ("start_fresh", None) in sent
    assert saga_runs_fresh() == [runs[2]]


def test_a_lost_start_fresh_is_made_good_by_the_next_one(start_run, sent):
    lost = start_run("demo.local")  # its start_fresh message never arrives
    tasks.poke_clear(tasks.FRESH_POKE_KEY)  # the flag expired
    later = start_run("demo.local")
    sent.clear()

    assert tasks.start_fresh.apply().get() == 2
    assert saga_run_get(run_id=lost).status == RunStatus.COMPLETED
    assert sent == [("advance", later)]


def test_an_unstarted_run_whose_start_fresh_was_lost_is_swept(start_run, sent):
    run_id = start_run("demo.local")
    sent.clear()
    assert tasks.sweep_due_runs() == 1  # SAGA_SWEEP_GRACE is 0 in these tests
    assert sent == [("advance", run_id)]
    assert saga_runs_fresh() == []  # swept: start_fresh will not send it a second time


@pytest.fixture
def sent_many(monkeypatch, sent):
    """As `sent`, plus ("advance_many", [run ids])."""
    monkeypatch.setattr(tasks.advance_many, "delay", lambda run_ids: sent.append(("advance_many", run_ids)))
    return sent


def test_a_burst_goes_out_in_chunks_not_one_message_per_run(start_run, sent_many, settings):
    settings.SAGA_FRESH_FANOUT = 2
    settings.SAGA_FRESH_CHUNK = 3
    runs = [start_run("demo.local") for _ in range(8)]
    sent_many.clear()

    assert tasks.start_fresh.apply().get() == 8

    # The oldest runs here; the other 7 go out in ceil(7 / 3) = 3 messages (at least
    # the fan-out of 2), dealt in turn so every message gets old and young runs.
    assert sent_many == [
        ("advance_many", [runs[1], runs[4], runs[7]]),
        ("advance_many", [runs[2], runs[5]]),
        ("advance_many", [runs[3], runs[6]]),
    ]
    assert saga_run_get(run_id=runs[0]).status == RunStatus.COMPLETED


def test_fresh_chunks_keep_the_fan_out_and_the_chunk_size(settings):
    settings.SAGA_FRESH_FANOUT = 8
    settings.SAGA_FRESH_CHUNK = 20
    assert tasks.fresh_chunks([]) == []
    assert tasks.fresh_chunks([1, 2, 3]) == [[1], [2], [3]]
    assert tasks.fresh_chunks(list(range(16))) == [[i, i + 8] for i in range(8)]
    assert [len(c) for c in tasks.fresh_chunks(list(range(100)))] == [13] * 4 + [12] * 4  # the fan-out
    assert [len(c) for c in tasks.fresh_chunks(list(range(400)))] == [20] * 20  # the chunk size


def test_advance_many_runs_each_run_and_one_error_stops_none(start_run, sent_many, monkeypatch):
    runs = [start_run("demo.local") for _ in range(3)]
    real = tasks._advance

    def advance_or_break(run_id, hostname):
        if run_id == runs[1]:
            raise RuntimeError("a bug in one run")
        return real(run_id, hostname)

    monkeypatch.setattr(tasks, "_advance", advance_or_break)
    assert tasks.advance_many.apply(args=[runs]).get() == 3
    assert [saga_run_get(run_id=r).status for r in runs] == [
        RunStatus.COMPLETED,
        RunStatus.RUNNING,  # left for the sweeper
        RunStatus.COMPLETED,
    ]


def test_advance_many_hands_the_rest_on_after_its_budget(start_run, sent_many, settings):
    settings.SAGA_CHUNK_BUDGET = 0.0  # every run after the first is over budget
    runs = [start_run("demo.local") for _ in range(3)]
    sent_many.clear()

    assert tasks.advance_many.apply(args=[runs]).get() == 1

    assert saga_run_get(run_id=runs[0]).status == RunStatus.COMPLETED
    assert sent_many == [("advance_many", runs[1:])]
    assert {saga_run_get(run_id=r).status for r in runs[1:]} == {RunStatus.RUNNING}
