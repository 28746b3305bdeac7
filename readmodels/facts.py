"""The finance model's facts, derived two ways that must agree (DESIGN §6.10):

- from an outbox event (the consumer), and
- from the owners' tables (a rebuild, and the drift check's fresh recomputation).

Both produce the same `Fact` for the same business fact, under the same key, so the
model is idempotent by key whichever way a fact arrived first.

Days are UTC dates of the moment the fact became true in its owner's table: an
order's created_at, the ledger transaction of a capture or refund (events schema 2
carry it as meta.ledger_at), an incident's detected_at and resolved_at. A dismissal
is counted against the day the incident was detected (it removes a false positive
from that day's count).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.utils.dateparse import parse_datetime

from outbox.dto import EventDTO

from .models import FactKind


@dataclass(frozen=True)
class Fact:
    key: str
    kind: str
    day: date
    currency: str
    amount: Decimal
    seconds: Decimal
    at: datetime
    incident_type: str = ""


def _utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def _ms(at: datetime) -> datetime:
    """Events carry timestamps as JSON, to the millisecond (DjangoJSONEncoder): the
    source side is cut the same way, so both count the same seconds."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _when(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, datetime):
        return _ms(value)
    parsed = parse_datetime(value) if isinstance(value, str) else None
    return _ms(parsed or fallback)


def _fact(
    key: str,
    kind: str,
    at: datetime,
    currency: str,
    amount: Any = 0,
    *,
    seconds: Decimal = Decimal(0),
    day: date | None = None,
    incident_type: str = "",
) -> Fact:
    at = _ms(at)
    return Fact(
        key, kind, day or _utc_day(at), currency or "", Decimal(str(amount or 0)), seconds, at, incident_type
    )


# --- From the owners' tables -------------------------------------------------------


def order_fact(row: dict[str, Any]) -> Fact:
    return _fact(f"order:{row['id']}", FactKind.ORDER, row["created_at"], row["currency"], row["total"])


def money_fact(row: dict[str, Any]) -> Fact:
    if row["kind"] == "refund":
        return _fact(f"refund:{row['refund_id']}", FactKind.REFUND, row["at"], row["currency"], row["amount"])
    return _fact(f"capture:{row['payment_id']}", FactKind.CAPTURE, row["at"], row["currency"], row["amount"])


def incident_facts(row: dict[str, Any]) -> Iterator[Fact]:
    detected_at = _ms(row["detected_at"])
    kind = row["type"]
    yield _fact(
        f"incident:{row['id']}",
        FactKind.INCIDENT,
        detected_at,
        row["currency"],
        row["amount_at_risk"],
        incident_type=kind,
    )
    if row["resolved_at"] is None:
        return
    resolved_at = _ms(row["resolved_at"])
    if row["state"] == "dismissed":
        yield _fact(
            f"incident:{row['id']}:closed",
            FactKind.DISMISSED,
            resolved_at,
            row["currency"],
            row["amount_at_risk"],
            day=_utc_day(detected_at),
            incident_type=kind,
        )
    elif row["state"] == "resolved":
        yield _fact(
            f"incident:{row['id']}:closed",
            FactKind.RESOLVED,
            resolved_at,
            row["currency"],
            seconds=max(Decimal(0), Decimal(str((resolved_at - detected_at).total_seconds()))),
            incident_type=kind,
        )


def source_facts(
    *, orders: Iterable[dict], money: Iterable[dict], incidents: Iterable[dict]
) -> Iterator[Fact]:
    for row in orders:
        yield order_fact(row)
    for row in money:
        yield money_fact(row)
    for row in incidents:
        yield from incident_facts(row)


# --- From events -------------------------------------------------------------------


def event_facts(event: EventDTO) -> list[Fact]:
    """The facts an event reports (none for types the finance model does not count).
    Schema-1 events (before meta.ledger_at) fall back to the event's own time."""
    obj = event.payload.get("object") or {}
    meta = event.payload.get("meta") or {}
    if event.type == "order.placed":
        at = _when(obj.get("created_at"), event.created_at)
        return [_fact(f"order:{obj['id']}", FactKind.ORDER, at, obj["currency"], obj["total"])]
    if event.type == "payment.captured":
        at = _when(meta.get("ledger_at"), event.created_at)
        return [_fact(f"capture:{obj['id']}", FactKind.CAPTURE, at, obj["currency"], obj["amount"])]
    if event.type == "payment.refunded":
        refund = obj["refund"]
        at = _when(meta.get("ledger_at"), event.created_at)
        return [_fact(f"refund:{refund['id']}", FactKind.REFUND, at, refund["currency"], refund["amount"])]
    if event.type in INCIDENT_EVENT_TYPES:
        row = {
            "id": obj["id"],
            "type": obj["type"],
            "state": obj["state"],
            "currency": obj.get("currency") or "",
            "amount_at_risk": obj.get("amount_at_risk") or 0,
            "detected_at": _when(obj.get("detected_at"), event.created_at),
            "resolved_at": _when(obj.get("resolved_at"), event.created_at)
            if event.type in _CLOSING
            else None,
        }
        # Every incident event carries the detection (with the money at risk as it is
        # now: facts hold absolute values, so a repeat changes nothing); the closing
        # events carry the closing too.
        return list(incident_facts(row))
    return []


_CLOSING = frozenset({"incident.resolved", "incident.dismissed"})
INCIDENT_EVENT_TYPES = frozenset({"incident.opened", "incident.updated"}) | _CLOSING
FINANCE_EVENT_TYPES = (
    frozenset({"order.placed", "payment.captured", "payment.refunded"}) | INCIDENT_EVENT_TYPES
)
