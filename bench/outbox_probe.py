"""Bench-only consumers, registered on import in the bench's worker (`-I bench.outbox_probe`):

- bench-lag-probe: writes when each event was applied (clock_timestamp(), in the
  relay's transaction) next to when it was recorded, so the bench reads the
  end-to-end lag (recorded -> applied by a consumer) from one table;
- bench-noop: does nothing (the relay's own cost).
"""

from __future__ import annotations

from django.db import connection

from outbox import registry
from outbox.dto import EventDTO

PROBE_TABLE = "bench_outbox_lag"


def probe(event: EventDTO) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PROBE_TABLE} (event_id, type, recorded_at, applied_at) "
            "VALUES (%s, %s, %s, clock_timestamp())",
            [event.id, event.type, event.created_at],
        )


def noop(event: EventDTO) -> None:
    pass


CREATE_PROBE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (event_id uuid PRIMARY KEY, type text NOT NULL, "
    "recorded_at timestamptz NOT NULL, applied_at timestamptz NOT NULL)"
)

registry.register(registry.Consumer("bench-lag-probe", probe, batch_size=500), replace=True)
