"""The facts reconciliation publishes (docs/events.md), recorded in the transaction
that opens or closes the incident:

- incident.opened     a detector found a new condition
- incident.resolved   a re-check no longer finds it (automatic) or a person's
                      resolution was confirmed by the re-check (manual)
- incident.dismissed  a person called it a false positive
- incident.updated    a re-detection changed a live incident's money at risk
                      (amount_at_risk or currency; schema 2)

Payload (schema 2): {"object": {"object": "incident", id, type, severity, state,
order_id, payment_id, charge_id, amount_at_risk, currency, resolution_kind,
detected_at, resolved_at}}. Schema 2 added the two timestamps: the finance read
model counts an incident on the day it was detected and its time to resolve.
Incidents are internal: they are not shown to API clients (webhooks skip them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.money import format_amount
from outbox.dto import NewEvent
from outbox.services import events_record

INCIDENT_OPENED = "incident.opened"
INCIDENT_RESOLVED = "incident.resolved"
INCIDENT_DISMISSED = "incident.dismissed"
INCIDENT_UPDATED = "incident.updated"
SCHEMA_VERSION = 2
FIELDS = (
    "id",
    "type",
    "severity",
    "state",
    "order_id",
    "payment_id",
    "charge_id",
    "amount_at_risk",
    "currency",
    "resolution_kind",
    "detected_at",
    "resolved_at",
)


def incident_document(row: dict[str, Any]) -> dict[str, Any]:
    """`row` has FIELDS (a model's values() or attributes)."""
    doc = {"object": "incident", **{name: row[name] for name in FIELDS}}
    currency = row["currency"]
    doc["amount_at_risk"] = (
        format_amount(row["amount_at_risk"], currency) if currency else str(row["amount_at_risk"])
    )
    return doc


def incident_events_record(event_type: str, rows: Iterable[dict[str, Any]]) -> None:
    events_record(
        NewEvent(
            type=event_type,
            aggregate_type="incident",
            aggregate_id=row["id"],
            payload={"object": incident_document(row)},
            schema_version=SCHEMA_VERSION,
        )
        for row in rows
    )
