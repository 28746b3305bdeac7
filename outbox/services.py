"""Recording events: the one write other apps make to the outbox.

    event_record(type="order.confirmed", aggregate_type="order", aggregate_id=42,
                 payload={...})

Called inside the service's transaction, after the row lock and the transition,
so the event commits with the state change or not at all (DESIGN §6.10). Outside
a transaction it refuses (an event whose state change might still roll back, or
a state change whose event might be lost, is what the outbox exists to prevent).

The caller holds the aggregate's row lock (or has just created the aggregate):
that is what makes two events of one aggregate commit in the order they were
recorded, which the relay relies on (docs/events.md, "Ordering").
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from core.errors import ConcordError

from . import registry
from .dto import NewEvent
from .models import ConsumerState, Event, Sequencer
from .relay import consumer_states_ensure
from .tasks import poke_on_commit

log = logging.getLogger(__name__)

TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
AGGREGATE_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_PAYLOAD_BYTES = 64 * 1024


def _in_transaction() -> bool:
    # Test cases wrap each test in atomic blocks marked _from_testcase: those do not count.
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def _clean(event: NewEvent) -> tuple[NewEvent, str]:
    """The event checked, and its payload as JSON (serialised once, here)."""
    if not isinstance(event.type, str) or len(event.type) > 100 or not TYPE_RE.match(event.type):
        raise ConcordError(
            f"Event type {event.type!r} is not like 'order.confirmed'.", code="outbox_event_invalid"
        )
    if not isinstance(event.aggregate_type, str) or not AGGREGATE_TYPE_RE.match(event.aggregate_type):
        raise ConcordError(
            f"Aggregate type {event.aggregate_type!r} is invalid.", code="outbox_event_invalid"
        )
    aggregate_id = str(event.aggregate_id)
    if not 1 <= len(aggregate_id) <= 64:
        raise ConcordError("An aggregate id is 1-64 characters.", code="outbox_event_invalid")
    if not isinstance(event.payload, dict):
        raise ConcordError("An event payload is a JSON object.", code="outbox_event_invalid")
    try:
        payload = json.dumps(event.payload, cls=DjangoJSONEncoder)
    except (TypeError, ValueError) as exc:
        raise ConcordError(f"The payload is not JSON: {exc}", code="outbox_event_invalid") from None
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ConcordError("The payload is too large.", code="outbox_event_invalid")
    if isinstance(event.schema_version, bool) or not isinstance(event.schema_version, int):
        raise ConcordError("schema_version is an integer.", code="outbox_event_invalid")
    return NewEvent(
        event.type, event.aggregate_type, aggregate_id, event.payload, event.schema_version
    ), payload


_COLUMNS = ("id", "type", "aggregatetype", "aggregateid", "payload", "schema_version", "created_at")
_ROW = "(%s, %s, %s, %s, %s::jsonb, %s, %s)"


def events_record(events: Iterable[NewEvent]) -> list[str]:
    """Record several events in the caller's transaction (one INSERT). Returns their ids.

    Raw SQL on purpose: this runs in every state change, POST orders/ included, and
    the ORM's save() of an Event cost ~530 µs of CPU per event (model init, the JSON
    encoded twice, RETURNING serial) against ~235 µs for this statement, measured
    in one process (docs/benchmarks.md, "Outbox"). `serial` comes from its column default."""
    if not _in_transaction():
        raise ConcordError(
            "Events are recorded inside the transaction of their state change.",
            code="outbox_outside_transaction",
            http_status=500,
        )
    clean = [_clean(e) for e in events]
    if not clean:
        return []
    now = timezone.now()
    ids = [uuid.uuid4() for _ in clean]
    params: list = []
    for event_id, (event, payload) in zip(ids, clean, strict=True):
        params += [
            event_id,
            event.type,
            event.aggregate_type,
            event.aggregate_id,
            payload,
            event.schema_version,
            now,
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Event._meta.db_table} ({', '.join(_COLUMNS)}) VALUES "  # noqa: S608 - names from the model
            + ", ".join([_ROW] * len(clean)),
            params,
        )
    poke_on_commit()
    return [str(i) for i in ids]


def event_record(
    *, type: str, aggregate_type: str, aggregate_id: str | int, payload: dict, schema_version: int = 1
) -> str:
    """Record one event in the caller's transaction. Returns its id (a UUID string)."""
    (event_id,) = events_record([NewEvent(type, aggregate_type, aggregate_id, payload, schema_version)])
    return event_id


def consumer_rebuild(*, name: str, rebuild: Callable[[], object]) -> int:
    """Recompute a consumer's effects from the source tables (`rebuild`) and move its
    position to the head of the sequence, in one transaction that holds the
    consumer's row lock (dispatchers skip it meanwhile). Returns the new position.

    Why this is safe: the head is read first, so every event numbered up to it has
    committed and its state change is visible to `rebuild`'s reads (READ COMMITTED:
    each statement sees every commit before it); events after the head are applied
    afterwards as usual, some of them about changes `rebuild` already saw — the
    consumer must absorb those (idempotent by its own keys, absolute values)."""
    consumer_states_ensure([registry.get(name)])
    with transaction.atomic():
        state = ConsumerState.objects.select_for_update().get(pk=name)
        head = Sequencer.objects.filter(pk=1).values_list("last_sequence", flat=True).first() or 0
        rebuild()
        state.position = head
        state.last_delivered_at = timezone.now()
        state.attempts, state.next_attempt_at, state.last_error, state.failing_since = 0, None, "", None
        state.save()
    log.info("outbox consumer %s rebuilt from the source tables; position %s", name, head)
    return head
