"""outbox owns these tables (DESIGN §1): events, the sequencer's counter, and one
state row per consumer (its position in the event sequence).

An Event row is written in the transaction of the state change it reports
(outbox.services.event_record), so it exists iff that change committed. Columns
follow Debezium's outbox event router (`id`, `aggregatetype`, `aggregateid`,
`type`, `payload`), so a CDC pipeline could read this table as it is.

Two numbers order events:

- `serial`: taken from a PostgreSQL sequence at INSERT. Insertion order, NOT commit
  order: a transaction that took serial 10 may commit after the one that took 11.
- `sequence`: given by the sequencer (outbox.relay.sequence_pending) to committed
  events only, one sequencer at a time, from a transactional counter. So the numbers
  a reader can see always form a gapless prefix 1..N, a consumer that has read up to
  N can never meet a later event numbered <= N, and a cursor per consumer is enough.
  docs/events.md explains why this gives commit order per aggregate.
"""

from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

SERIAL_SEQUENCE = "outbox_event_serial_seq"


class Event(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=100, help_text="A fact in the past tense, e.g. order.confirmed.")
    aggregate_type = models.CharField(max_length=64, db_column="aggregatetype")
    aggregate_id = models.CharField(max_length=64, db_column="aggregateid")
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    schema_version = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField()
    serial = models.BigIntegerField(
        editable=False,
        db_default=models.Func(
            models.Value(SERIAL_SEQUENCE), function="nextval", output_field=models.BigIntegerField()
        ),
        help_text="Insertion order (taken at INSERT; not commit order).",
    )
    sequence = models.BigIntegerField(
        null=True, blank=True, unique=True, help_text="Commit order, given by the sequencer."
    )
    sequenced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-serial"]
        indexes = [
            # The sequencer's work: committed events without a sequence, oldest first.
            models.Index(
                fields=["serial"], name="outbox_event_unsequenced", condition=Q(sequence__isnull=True)
            ),
            # An aggregate's story (case file, tests), in commit order.
            models.Index(
                fields=["aggregate_type", "aggregate_id", "sequence"], name="outbox_event_aggregate"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.aggregate_type}:{self.aggregate_id} #{self.sequence or '-'}"


class Sequencer(models.Model):
    """One row: the last sequence number given. Its row lock is the sequencer's
    mutual exclusion (SELECT … FOR UPDATE SKIP LOCKED: a second relay skips)."""

    last_sequence = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"sequencer at {self.last_sequence}"


class ConsumerState(models.Model):
    """Where one consumer stands: every event up to `position` is applied, and its
    effects committed in the same transaction as this row's update."""

    name = models.CharField(max_length=64, primary_key=True)
    position = models.BigIntegerField(default=0)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    last_event_id = models.UUIDField(null=True, blank=True)
    # A handler that raised: the consumer waits at that event, retrying with backoff.
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"
