"""What outbox hands to consumers and readers: frozen dataclasses, never models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Event


@dataclass(frozen=True)
class EventDTO:
    id: str
    type: str
    aggregate_type: str
    aggregate_id: str
    payload: dict[str, Any]
    schema_version: int
    created_at: datetime
    sequence: int | None

    @classmethod
    def from_model(cls, event: Event) -> EventDTO:
        return cls(
            id=str(event.id),
            type=event.type,
            aggregate_type=event.aggregate_type,
            aggregate_id=event.aggregate_id,
            payload=event.payload,
            schema_version=event.schema_version,
            created_at=event.created_at,
            sequence=event.sequence,
        )


@dataclass(frozen=True)
class NewEvent:
    """An event to record (outbox.services.events_record)."""

    type: str
    aggregate_type: str
    aggregate_id: str | int
    payload: dict[str, Any]
    schema_version: int = 1


@dataclass(frozen=True)
class ConsumerLag:
    name: str
    position: int
    pending: int  # events not yet applied (sequenced after `position`, or not sequenced yet)
    oldest_pending_at: datetime | None
    oldest_pending_age: float  # seconds; 0 when nothing is pending
    last_delivered_at: datetime | None
    attempts: int
    last_error: str
    next_attempt_at: datetime | None
