"""event_record and the relay, in one process (real PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core.errors import ConcordError
from outbox import registry
from outbox.models import ConsumerState, Event
from outbox.relay import consumer_dispatch, relay_pass, sequence_pending
from outbox.retention import events_prune
from outbox.selectors import consumer_lag, events_for_aggregate, outbox_lag_report
from outbox.services import event_record

from .conftest import record

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_event_is_refused_outside_a_transaction():
    with pytest.raises(ConcordError) as exc:
        event_record(type="thing.happened", aggregate_type="thing", aggregate_id=1, payload={})
    assert exc.value.code == "outbox_outside_transaction"
    assert Event.objects.count() == 0


def test_a_rolled_back_transaction_leaves_no_event():
    def change_that_fails() -> None:
        with transaction.atomic():
            event_record(type="thing.happened", aggregate_type="thing", aggregate_id=1, payload={})
            raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        change_that_fails()
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"type": "Thing happened"},
        {"type": "thing"},
        {"aggregate_type": "Thing!"},
        {"aggregate_id": ""},
        {"aggregate_id": "x" * 65},
        {"payload": ["not", "an", "object"]},
        {"payload": {"x": object()}},
    ],
)
def test_bad_events_are_refused_with_a_code(kwargs):
    args = {"type": "thing.happened", "aggregate_type": "thing", "aggregate_id": 1, "payload": {}, **kwargs}
    with pytest.raises(ConcordError) as exc, transaction.atomic():
        event_record(**args)
    assert exc.value.code == "outbox_event_invalid"


def test_sequence_follows_commit_order_not_insertion_order(recorder, only_consumers):
    """A transaction that inserted first but commits last gets the later sequence,
    and nothing is skipped: the relay numbers only committed events."""
    only_consumers(recorder.name)
    import threading

    inserted = threading.Event()
    release = threading.Event()
    late_id: list[str] = []

    def slow_writer() -> None:
        with transaction.atomic():
            late_id.append(
                event_record(type="thing.happened", aggregate_type="thing", aggregate_id="slow", payload={})
            )
            inserted.set()
            release.wait(10)
        from django.db import connection

        connection.close()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert inserted.wait(10)
    fast = record(aggregate_id="fast")
    relay_pass()
    assert [e.id for e in recorder.seen] == [fast]  # the uncommitted one is invisible, not skipped
    release.set()
    thread.join(10)
    relay_pass()
    assert [e.id for e in recorder.seen] == [fast, late_id[0]]
    slow = Event.objects.get(pk=late_id[0])
    assert slow.serial < Event.objects.get(pk=fast).serial  # inserted first ...
    assert slow.sequence > Event.objects.get(pk=fast).sequence  # ... committed (and numbered) last
    assert [e.sequence for e in recorder.seen] == [1, 2]


def test_each_event_reaches_a_consumer_once_in_sequence_order(recorder, only_consumers):
    only_consumers(recorder.name)
    ids = [record(aggregate_id=i % 3, n=i) for i in range(25)]
    relay_pass()
    relay_pass()  # nothing new: nothing twice
    assert [e.id for e in recorder.seen] == ids
    assert ConsumerState.objects.get(pk=recorder.name).position == 25


def test_a_failing_handler_stops_the_consumer_at_that_event_and_retries(recorder, only_consumers):
    only_consumers(recorder.name)
    first = record(n=1)
    bad = record(n=2)
    third = record(n=3)
    recorder.fail_on = {bad}
    relay_pass()
    assert [e.id for e in recorder.seen] == [first]
    state = ConsumerState.objects.get(pk=recorder.name)
    assert state.attempts == 1 and bad in state.last_error and state.next_attempt_at is not None
    [lag] = consumer_lag()
    assert (lag.pending, lag.attempts) == (2, 1)
    # Not before its retry time, then yes: the handler works again.
    relay_pass()
    assert len(recorder.seen) == 1
    recorder.fail_on = set()
    ConsumerState.objects.filter(pk=recorder.name).update(next_attempt_at=timezone.now())
    relay_pass()
    assert [e.id for e in recorder.seen] == [first, bad, third]
    state.refresh_from_db()
    assert (state.attempts, state.last_error, state.next_attempt_at) == (0, "", None)


def test_a_consumer_sees_only_its_event_types_and_moves_past_the_others(only_consumers):
    seen = []
    registry.register(
        registry.Consumer("typed", lambda e: seen.append(e.type), event_types={"b.happened"}), replace=True
    )
    only_consumers("typed")
    record(type="a.happened")
    record(type="b.happened")
    relay_pass()
    assert seen == ["b.happened"]
    assert ConsumerState.objects.get(pk="typed").position == 2


def test_a_consumer_starting_now_skips_history(only_consumers):
    seen = []
    record(n=1)
    sequence_pending()
    registry.register(
        registry.Consumer("late", lambda e: seen.append(e.payload["n"]), start="now"), replace=True
    )
    only_consumers("late")
    record(n=2)
    relay_pass()
    assert seen == [2]


def test_the_sequencer_skips_while_another_relay_holds_it(recorder, only_consumers):
    only_consumers(recorder.name)
    record()
    sequence_pending()  # creates the counter row
    record()
    import threading

    from django.db import connection

    holding = threading.Event()
    done = threading.Event()

    def hold() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM outbox_sequencer WHERE id = 1 FOR UPDATE")
            holding.set()
            done.wait(10)
        connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    assert sequence_pending() == 0  # skipped, not blocked
    done.set()
    thread.join(10)
    assert sequence_pending() == 1


def test_a_busy_consumer_is_skipped_by_a_second_dispatcher(recorder, only_consumers):
    only_consumers(recorder.name)
    record()
    sequence_pending()
    consumer_dispatch(recorder.name, limit=1)  # creates the row
    record()
    sequence_pending()
    with transaction.atomic():
        ConsumerState.objects.select_for_update().get(pk=recorder.name)
        import threading

        results = []

        def other():
            results.append(consumer_dispatch(recorder.name))
            from django.db import connection

            connection.close()

        t = threading.Thread(target=other)
        t.start()
        t.join(10)
    assert results[0].busy and len(recorder.seen) == 1


def test_lag_and_readyz_detail(recorder, only_consumers, settings):
    only_consumers(recorder.name)
    settings.OUTBOX_LAG_READY_SECONDS = 30
    record()
    Event.objects.update(created_at=timezone.now() - timedelta(seconds=90))
    [lag] = consumer_lag()
    assert lag.pending == 1 and lag.oldest_pending_age >= 90 and lag.last_delivered_at is None
    report = outbox_lag_report()
    assert report["lagging"][recorder.name]["pending"] == 1
    relay_pass()
    [lag] = consumer_lag()
    assert (lag.pending, lag.oldest_pending_age) == (0, 0.0) and lag.last_delivered_at is not None
    assert outbox_lag_report() is None


def test_every_consumers_lag_in_one_statement_each_from_its_own_position(only_consumers):
    """consumer_lag() reads every consumer's backlog in one statement: one caught up,
    one behind, one that never ran (position 0, no state row) and two at the same
    position, each with the events after its own position (plus any not yet sequenced)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    names = ("lag-head", "lag-behind", "lag-twin", "lag-never")
    for name in names:
        registry.register(registry.Consumer(name, lambda e: None), replace=True)
    only_consumers(*names)
    for i in range(4):
        record(aggregate_id=i)
    sequence_pending()
    sequences = list(Event.objects.order_by("sequence").values_list("sequence", flat=True))
    for name, position in (
        ("lag-head", sequences[-1]),
        ("lag-behind", sequences[1]),
        ("lag-twin", sequences[1]),
    ):
        ConsumerState.objects.create(name=name, position=position)
    record(aggregate_id=9)  # committed, not sequenced yet: pending for everyone
    with CaptureQueriesContext(connection) as ctx:
        lags = {lag.name: lag for lag in consumer_lag()}
    assert len(ctx.captured_queries) == 2  # the states, then every backlog
    assert {name: lag.pending for name, lag in lags.items()} == {
        "lag-head": 1, "lag-behind": 3, "lag-twin": 3, "lag-never": 5,
    }  # fmt: skip
    assert lags["lag-never"].position == 0 and lags["lag-never"].oldest_pending_at is not None


def test_readyz_names_a_lagging_consumer_to_those_who_may_see_details(
    client, recorder, only_consumers, settings
):
    only_consumers(recorder.name)
    settings.OUTBOX_LAG_READY_SECONDS = 30
    settings.READYZ_TOKEN = "readyz-secret"
    record()
    Event.objects.update(created_at=timezone.now() - timedelta(seconds=90))
    anonymous = client.get("/readyz").json()
    assert anonymous == {"status": "degraded"}  # which consumer and its errors: not for everyone
    body = client.get("/readyz", headers={"Authorization": "Bearer readyz-secret"}).json()
    assert body["status"] == "degraded"
    assert body["details"]["outbox"]["lagging"][recorder.name]["pending"] == 1


def test_prune_keeps_undelivered_and_recent_events(recorder, only_consumers, settings):
    only_consumers(recorder.name)
    settings.OUTBOX_RETENTION_DAYS = 7
    old_delivered = record(n=1)
    recent_delivered = record(n=2)
    relay_pass()
    old_pending = record(n=3)
    Event.objects.filter(pk__in=[old_delivered, old_pending]).update(
        created_at=timezone.now() - timedelta(days=8)
    )
    assert events_prune() == 1
    left = {str(i) for i in Event.objects.values_list("id", flat=True)}
    assert left == {recent_delivered, old_pending}
    assert [e.id for e in events_for_aggregate(aggregate_type="thing", aggregate_id=1)] == [
        recent_delivered,
        old_pending,
    ]


def test_the_eventual_side_has_its_own_queue_and_nothing_is_delivered_twice():
    from config.celery_app import app

    queues = {q.name: q.routing_key for q in app.amqp.queues.values()}
    # one binding each: no message in both
    assert queues == {"celery": "celery", "events": "events", "bulk": "bulk"}
    for task in ("outbox.relay", "webhooks.deliver", "notifications.send_pending"):
        assert app.amqp.router.route({}, task)["queue"].name == "events"
    assert app.amqp.router.route({}, "sagas.advance")["queue"].name == "celery"
    for task in ("backoffice.bulk_run", "backoffice.bulk_resume"):
        assert app.amqp.router.route({}, task)["queue"].name == "bulk"
    assert app.amqp.router.route({}, "backoffice.refund_send")["queue"].name == "celery"


def test_a_poke_the_broker_cannot_take_is_a_warning_and_pauses_pokes(monkeypatch, caplog):
    from core import pokes
    from outbox import tasks

    def broker_down():
        raise ConnectionRefusedError("redis is restarting")

    monkeypatch.setattr(pokes, "_skip_until", 0.0)
    monkeypatch.setattr(tasks.relay, "delay", broker_down)
    tasks.poke_clear(tasks.POKE_KEY)
    tasks.poke()  # no exception reaches the committed request
    assert "pokes paused" in caplog.text and "Traceback" not in caplog.text
    calls = []
    monkeypatch.setattr(tasks.relay, "delay", lambda: calls.append(1))
    tasks.poke_clear(tasks.POKE_KEY)
    tasks.poke()
    assert calls == []  # paused: the poll carries the work meanwhile
