"""Reads of idempotency records, for staff search and an order's case file.

Records know nothing of orders (DESIGN §1: a primitive); the id a request created is
read from its stored JSON response, so callers can link a key to what it made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.sql import int_slot, prepared, slot

from .models import IdempotencyRecord

_MAX_ROWS = 50


@dataclass(frozen=True)
class IdempotencyRecordDTO:
    id: int
    client_id: int
    key: str
    request_method: str
    request_path: str
    state: str
    response_status: int | None
    # The "id" field of a stored JSON object response, if any (e.g. the order created).
    response_object_id: int | None
    created_at: datetime
    expires_at: datetime


def _object_id(body: bytes | memoryview | None) -> int | None:
    if not body:
        return None
    try:
        data = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError):
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dto(record: IdempotencyRecord) -> IdempotencyRecordDTO:
    return IdempotencyRecordDTO(
        id=record.pk,
        client_id=record.client_id,
        key=record.key,
        request_method=record.request_method,
        request_path=record.request_path,
        state=record.state,
        response_status=record.response_status,
        response_object_id=_object_id(record.response_body),
        created_at=record.created_at,
        expires_at=record.expires_at,
    )


def idempotency_records_by_key(*, key: str) -> list[IdempotencyRecordDTO]:
    """The key as any client used it (keys are scoped per client), newest first."""
    key = (key or "").strip()
    if not key:
        return []
    records = IdempotencyRecord.objects.filter(key=key).order_by("-created_at", "-id")[:_MAX_ROWS]
    return [_dto(r) for r in records]


def idempotency_records_near(
    *, client_id: int, around: datetime, window: timedelta = timedelta(seconds=30)
) -> list[IdempotencyRecordDTO]:
    """One client's records written close to a moment (e.g. an order's creation): the
    caller matches response_object_id. Bounded by the window, the rows kept are
    bounded by the TTL."""
    # The case file reads this on every view: a statement built once (core.sql.prepared).
    records = prepared(
        "idempotency_records_near",
        lambda: IdempotencyRecord.objects.filter(
            client_id=int_slot(0), created_at__gte=slot(1), created_at__lte=slot(2)
        ).order_by("created_at", "id")[:_MAX_ROWS],
        slots=3,
    ).instances(IdempotencyRecord, client_id, around - window, around + window)
    return [_dto(r) for r in records]


def idempotency_records_created(
    *, path_prefix: str, since: datetime, client_ids: list[int] | None = None
) -> list[IdempotencyRecordDTO]:
    """Completed records whose stored response is a 201 for a POST under `path_prefix`
    (e.g. the orders endpoint), written since `since`: each names the object its key
    created (response_object_id). One query; bounded by the window and the TTL."""
    records = IdempotencyRecord.objects.filter(
        request_method="POST",
        request_path__startswith=path_prefix,
        response_status=201,
        created_at__gte=since,
    )
    if client_ids is not None:
        records = records.filter(client_id__in=list(client_ids))
    return [_dto(r) for r in records.order_by("id")]
