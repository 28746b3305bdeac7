"""The relay: give committed events their sequence, then hand them to consumers.

    relay_pass() -> RelayResult      # what a Celery relay task runs

1. sequence_pending(): ONE sequencer at a time (the Sequencer row's lock, taken
   with SKIP LOCKED so a second relay skips instead of waiting) numbers the
   committed events that have no sequence yet, in insertion (serial) order, from
   its transactional counter. Uncommitted events are invisible to it and get
   their number when they commit; numbers are never taken by a transaction that
   may still roll back, so the numbers readers see are always a gapless prefix.
2. consumer_dispatch(name): ONE dispatcher per consumer at a time (its
   ConsumerState row, SKIP LOCKED). In one transaction it reads the events after
   the consumer's position, in sequence order, calls the handler for each (no
   savepoint: see consumer_dispatch), and moves the position past every event
   applied: the effects and the position commit together, so an event is applied
   at most once per consumer, and a relay killed anywhere rolls back to the last
   commit and the next pass repeats the batch from there (at least once). A
   handler that raises stops the consumer at that event (the ones before it
   commit): it is retried with backoff and never skipped, so per-aggregate order
   holds; its lag grows and /readyz names it.
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from . import conf, registry
from .dto import EventDTO
from .models import ConsumerState, Event, Sequencer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchResult:
    consumer: str
    applied: int  # position moved past this many events (handled or passed over)
    handled: int  # handler calls that committed
    failed: bool  # the handler raised: the consumer waits for its retry
    busy: bool  # another relay holds this consumer (or it waits for a retry)
    caught_up: bool


@dataclass(frozen=True)
class RelayResult:
    sequenced: int
    dispatched: dict[str, int]
    more: bool  # the budget ran out with work left (a new pass was asked for)


def _ensure_sequencer() -> None:
    Sequencer.objects.get_or_create(pk=1)


_SEQUENCE_SQL = f"""
WITH counter AS (
    SELECT last_sequence FROM {Sequencer._meta.db_table} WHERE id = 1 FOR UPDATE SKIP LOCKED
), batch AS (
    SELECT e.id, c.last_sequence + row_number() OVER (ORDER BY e.serial) AS seq
    FROM (
        SELECT id, serial FROM {Event._meta.db_table}
        WHERE sequence IS NULL AND EXISTS (SELECT 1 FROM counter)
        ORDER BY serial LIMIT %s
    ) e CROSS JOIN counter c
), stamped AS (
    UPDATE {Event._meta.db_table} ev SET sequence = batch.seq, sequenced_at = now()
    FROM batch WHERE ev.id = batch.id
    RETURNING batch.seq
)
UPDATE {Sequencer._meta.db_table} SET last_sequence = (SELECT max(seq) FROM stamped)
WHERE id = 1 AND EXISTS (SELECT 1 FROM stamped)
RETURNING last_sequence, (SELECT count(*) FROM stamped)
"""  # noqa: S608 - table names from the models; the limit is a parameter


def sequence_pending(*, limit: int | None = None) -> int:
    """Number up to `limit` committed, unsequenced events; returns how many. 0 when
    there are none, or when another relay is sequencing right now (it will take them).

    One statement (its own transaction): lock the counter row (skip if taken), pick
    the oldest unsequenced events by serial, stamp them counter+1.., move the counter."""
    limit = limit or conf.sequence_batch()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_SEQUENCE_SQL, [limit])
            row = cursor.fetchone()
    if row is None:
        if not Sequencer.objects.filter(pk=1).exists():
            _ensure_sequencer()
            return sequence_pending(limit=limit)
        return 0
    return int(row[1])


def consumer_states_ensure(consumers: list[registry.Consumer]) -> None:
    """Create the rows of consumers that never ran: at position 0 (`beginning`), or
    at the last sequence given so far (`now`: it sees what is sequenced from here on,
    including events committed but not sequenced yet)."""
    known = set(ConsumerState.objects.filter(pk__in=[c.name for c in consumers]).values_list("pk", flat=True))
    missing = [c for c in consumers if c.name not in known]
    if not missing:
        return
    head = Sequencer.objects.filter(pk=1).values_list("last_sequence", flat=True).first() or 0
    now = timezone.now()
    with connection.cursor() as cursor:
        for consumer in missing:
            cursor.execute(
                f"INSERT INTO {ConsumerState._meta.db_table} "  # noqa: S608
                "(name, position, attempts, last_error, created_at, updated_at) "
                "VALUES (%s, %s, 0, '', %s, %s) ON CONFLICT (name) DO NOTHING",
                [consumer.name, head if consumer.start == registry.START_NOW else 0, now, now],
            )


def _retry_delay(attempts: int) -> float:
    base = min(conf.retry_max_delay(), 0.5 * 2 ** min(attempts - 1, 20))
    return base * random.uniform(0.5, 1.0)  # jitter: consumers failing together do not retry together


class _HandlerFailed(Exception):
    """A handler raised at `index` of the batch; raised out of the batch's atomic block
    so everything the batch did rolls back."""

    def __init__(self, index: int, event: EventDTO, error: BaseException) -> None:
        super().__init__(str(error))
        self.index, self.event, self.error = index, event, error


_EVENT_COLUMNS = (
    "id",
    "type",
    "aggregate_type",
    "aggregate_id",
    "payload",
    "schema_version",
    "created_at",
    "sequence",
)


def consumer_dispatch(name: str, *, limit: int | None = None, ensure: bool = True) -> DispatchResult:
    """Apply the next batch of events to one consumer (see the module docstring).

    Optimistic: the batch runs without a savepoint per event (each costs two round
    trips; the common case needs none). When a handler raises, the whole batch rolls
    back and is run again up to the event before the failing one, which then commits
    with the failure recorded — the consumer waits at the failing event. The limit
    shrinks every time, so this ends."""
    consumer = registry.get(name)
    limit = limit or consumer.batch_size
    if ensure:
        consumer_states_ensure([consumer])
    failure: _HandlerFailed | None = None
    while True:
        try:
            return _dispatch_batch(consumer, limit, failure)
        except _HandlerFailed as failed:
            log.warning("outbox consumer %s failed on event %s", name, failed.event.id, exc_info=failed.error)
            failure, limit = failed, failed.index


def _dispatch_batch(
    consumer: registry.Consumer, limit: int, failure: _HandlerFailed | None
) -> DispatchResult:
    name = consumer.name
    with transaction.atomic():
        state = ConsumerState.objects.select_for_update(skip_locked=True).filter(pk=name).first()
        now = timezone.now()
        if state is None or (state.next_attempt_at is not None and state.next_attempt_at > now):
            return DispatchResult(name, 0, 0, failed=False, busy=True, caught_up=False)
        rows = (
            Event.objects.filter(sequence__gt=state.position)
            .order_by("sequence")
            .values_list(*_EVENT_COLUMNS)
        )
        events = [EventDTO(str(r[0]), *r[1:]) for r in rows[:limit]] if limit else []
        if failure is not None and (
            len(events) != failure.index or (events and events[-1].sequence >= failure.event.sequence)
        ):
            failure = None  # the stream moved meanwhile (another relay): start over
            if not events:
                return DispatchResult(name, 0, 0, failed=False, busy=True, caught_up=False)
        handled = 0
        for index, event in enumerate(events):
            if consumer.wants(event.type):
                try:
                    consumer.handle(event)
                except Exception as exc:
                    raise _HandlerFailed(index, event, exc) from exc
                handled += 1
        if events:
            state.position = events[-1].sequence
            state.last_event_id = events[-1].id
            state.last_delivered_at = now
        if failure is not None:
            exc = failure.error
            state.attempts += 1
            state.last_error = (
                f"event {failure.event.id} ({failure.event.type}, #{failure.event.sequence}): "
                f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc)[-3:])
            )[:4000]
            state.failing_since = state.failing_since or now
            state.next_attempt_at = now + timedelta(seconds=_retry_delay(state.attempts))
        elif events and (state.attempts or state.next_attempt_at or state.last_error):
            state.attempts, state.next_attempt_at, state.last_error, state.failing_since = 0, None, "", None
        if events or failure is not None:
            state.save()
    return DispatchResult(
        name,
        len(events),
        handled,
        failed=failure is not None,
        busy=False,
        caught_up=failure is None and len(events) < limit,
    )


def relay_pass(*, budget: float | None = None) -> RelayResult:
    """Sequence everything committed, then bring every registered consumer up to
    date, within `budget` seconds. Safe to run any number of times, concurrently."""
    budget = conf.relay_budget_seconds() if budget is None else budget
    started = time.monotonic()
    sequenced = 0
    more = False
    batch = conf.sequence_batch()
    consumers = list(registry.consumers())
    consumer_states_ensure(consumers)
    while True:
        n = sequence_pending(limit=batch)
        sequenced += n
        if n < batch:
            break
        if time.monotonic() - started > budget:
            more = True
            break
    dispatched: dict[str, int] = {}
    for consumer in consumers:
        total = 0
        while True:
            result = consumer_dispatch(consumer.name, ensure=False)
            total += result.applied
            if result.busy or result.failed or result.caught_up:
                break
            if time.monotonic() - started > budget:
                more = True
                break
        dispatched[consumer.name] = total
    return RelayResult(sequenced=sequenced, dispatched=dispatched, more=more)
