"""Idempotency-Key records: claim a key, store the response, purge old records.

How one key gives one effect (PostgreSQL, READ COMMITTED, Django's default):

1. `idempotency_begin` runs inside the transaction that will do the effect. It
   INSERTs an in-flight record ... ON CONFLICT (client_id, key) DO NOTHING.
   - No one has the key: the row is inserted (uncommitted) and this request owns it.
   - A concurrent request inserted the key and has not committed: PostgreSQL makes
     our INSERT wait on the unique index for that transaction to end. If it
     commits, our INSERT does nothing and we read its committed, completed record
     (replay or 422); if it rolls back, our INSERT goes through and we own the key.
     The wait is bounded by a transaction-local lock_timeout
     (IDEMPOTENCY_LOCK_TIMEOUT_MS), set and restored around the INSERT in the
     same round trip; past it the request gets 409
     idempotency_key_in_use and nothing of it is kept.
   - The key was committed earlier: we read it (replay or 422).
2. The caller does its work in the same transaction, then `idempotency_complete`
   writes the status, body and headers into the record. The record and the effect
   commit together, or roll back together: a committed effect always has its
   record, and a request that stored nothing left no effect, so running it again
   cannot make a second one.

So an in-flight record is never visible to other transactions; "in use" is a
transaction still holding the key. Records live IDEMPOTENCY_TTL (>= 24 h); an
expired record still in the table is deleted when its key comes back, and the
purge task deletes the rest.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.http import QueryDict
from django.utils import timezone

from core.sql import insert_do_nothing_sql
from idempotency.choices import IdempotencyState
from idempotency.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyInvalid,
    IdempotencyKeyRequired,
    IdempotencyKeyReused,
)
from idempotency.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
MIN_TTL = timedelta(hours=24)
# Printable ASCII: space to tilde. Control characters, DEL and anything non-ASCII are refused.
_KEY_RE = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")
_PURGE_BATCH = 5000


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IdempotencyClaim:
    """Exactly one of the two is set: `record_id` when this request owns the key and
    must do the work, `replay` when a response is already stored for it."""

    record_id: int | None = None
    replay: StoredResponse | None = None


def idempotency_key_validate(raw: str | None) -> str:
    """The header value as given (None if absent) -> the key, or a 400 error."""
    if raw is None:
        raise IdempotencyKeyRequired(
            f"The {HEADER} header is required for this request.", details={"header": HEADER}
        )
    if not _KEY_RE.fullmatch(raw):
        raise IdempotencyKeyInvalid(
            f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            details={"header": HEADER},
        )
    return raw


def canonical_json(body: Any) -> str:
    """Sorted keys, no whitespace: two bodies that parse to the same JSON match."""
    if isinstance(body, QueryDict):  # DRF's empty body for form media types
        body = {key: body.getlist(key) for key in body}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def request_fingerprint(*, method: str, path: str, body: Any) -> str:
    material = f"{method.upper()}\n{path}\n{canonical_json(body)}"
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def idempotency_ttl() -> timedelta:
    return getattr(settings, "IDEMPOTENCY_TTL", MIN_TTL)


def _lock_timeout_ms() -> int:
    return int(getattr(settings, "IDEMPOTENCY_LOCK_TIMEOUT_MS", 2000))


def _is_lock_timeout(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "55P03"  # lock_not_available


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


_IN_FLIGHT_FIELDS = (
    "client_id",
    "key",
    "fingerprint",
    "request_method",
    "request_path",
    "state",
    "response_headers",
    "created_at",
    "expires_at",
)


def _insert_in_flight(
    *, client_id: int, key: str, fingerprint: str, method: str, path: str, now: datetime
) -> int | None:
    """INSERT the in-flight record; its id, or None if the key is taken (committed).
    The statement is core.sql's INSERT … ON CONFLICT DO NOTHING RETURNING id, run
    under the key's lock timeout."""
    sql = insert_do_nothing_sql(IdempotencyRecord, _IN_FLIGHT_FIELDS, conflict=("client_id", "key"))
    params = [
        client_id,
        key,
        fingerprint,
        method,
        path[:2048],
        IdempotencyState.IN_FLIGHT,
        "{}",
        now,
        now + idempotency_ttl(),
    ]
    rows = _execute_with_lock_timeout(sql, params)
    return rows[0][0] if rows else None


# One round trip: remember the lock_timeout in force, set ours, run the statement,
# restore the old value. Transaction-local (set_config(..., true)), and restored
# right after the statement so the caller's own locks (e.g. select_for_update)
# keep their usual timeout. The simple query protocol (Django's client-side
# binding cursor) runs the four statements in order and stops at the first error.
_SET_LOCK_TIMEOUT = (
    "SELECT set_config('concord.lock_timeout_before', current_setting('lock_timeout'), true); "
    "SELECT set_config('lock_timeout', %s, true); "
)
_RESTORE_LOCK_TIMEOUT = (
    "; SELECT set_config('lock_timeout', current_setting('concord.lock_timeout_before'), true)"
)


def _execute_with_lock_timeout(sql: str, params: list[Any]) -> list[tuple]:
    """Run one statement that may wait on another transaction's key, bounded by
    IDEMPOTENCY_LOCK_TIMEOUT_MS; its rows (RETURNING), if any."""
    with connection.cursor() as cursor:
        timeout = f"{_lock_timeout_ms()}ms"
        if connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"):
            # Prepared statements take one command each: three round trips.
            # The subquery (fenced by OFFSET 0) reads the old value before set_config runs.
            cursor.execute(
                "SELECT p.previous, set_config('lock_timeout', %s, true) "
                "FROM (SELECT current_setting('lock_timeout') AS previous OFFSET 0) AS p",
                [timeout],
            )
            previous = cursor.fetchone()
            cursor.execute(sql, params)
            rows = cursor.fetchall() if cursor.description else []
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous[0]])
            return rows
        cursor.execute(_SET_LOCK_TIMEOUT + sql + _RESTORE_LOCK_TIMEOUT, [timeout, *params])
        cursor.nextset()  # past "remember"
        cursor.nextset()  # past "set": now at the statement's own result
        return cursor.fetchall() if cursor.description else []


def _delete_expired(*, record_id: int, now: datetime) -> None:
    # Bounded too: another request may be replacing the same expired record.
    table = _quoted(IdempotencyRecord._meta.db_table)
    sql = f"DELETE FROM {table} WHERE {_quoted('id')} = %s AND {_quoted('expires_at')} <= %s"  # noqa: S608
    _execute_with_lock_timeout(sql, [record_id, now])


def _claim(
    *, client_id: int, key: str, fingerprint: str, method: str, path: str, now: datetime
) -> IdempotencyClaim:
    # Three rounds cover the races that can move the key under us: the record we
    # conflicted with was expired (we delete it and insert again), or it vanished
    # (rolled back, purged) between our INSERT and our SELECT.
    for _ in range(3):
        record_id = _insert_in_flight(
            client_id=client_id, key=key, fingerprint=fingerprint, method=method, path=path, now=now
        )
        if record_id is not None:
            return IdempotencyClaim(record_id=record_id)
        existing = IdempotencyRecord.objects.filter(client_id=client_id, key=key).first()
        if existing is None:
            continue
        if existing.expires_at <= now:
            _delete_expired(record_id=existing.pk, now=now)
            continue
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                f"This {HEADER} was already used for a different request.",
                details={
                    "header": HEADER,
                    "original_method": existing.request_method,
                    "original_path": existing.request_path,
                },
            )
        if existing.state != IdempotencyState.COMPLETED:
            raise IdempotencyKeyInUse(
                f"A request with this {HEADER} is still in progress; retry shortly.",
                details={"header": HEADER},
            )
        return IdempotencyClaim(
            replay=StoredResponse(
                status=existing.response_status or 200,
                body=bytes(existing.response_body or b""),
                headers=dict(existing.response_headers or {}),
            )
        )
    raise IdempotencyKeyInUse(
        f"A request with this {HEADER} is still in progress; retry shortly.", details={"header": HEADER}
    )


def idempotency_begin(
    *,
    client_id: int,
    key: str,
    fingerprint: str,
    method: str,
    path: str,
    now: datetime | None = None,
) -> IdempotencyClaim:
    """Claim `key` for this request, or find the response already stored for it.

    Must run inside the transaction (`transaction.atomic()`) that does the request's
    effect, and that transaction must end with `idempotency_complete` (commit) or a
    rollback: that is what makes record and effect one commit.
    Raises IdempotencyKeyReused (422) or IdempotencyKeyInUse (409).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("idempotency_begin must run inside the transaction that does the effect.")
    now = now or timezone.now()
    try:
        return _claim(
            client_id=client_id, key=key, fingerprint=fingerprint, method=method, path=path, now=now
        )
    except OperationalError as exc:
        if not _is_lock_timeout(exc):
            raise
        # The transaction is aborted in PostgreSQL: make Django roll it back too.
        transaction.set_rollback(True)
        raise IdempotencyKeyInUse(
            f"A request with this {HEADER} is still in progress; retry shortly.",
            details={"header": HEADER},
        ) from exc


@functools.cache
def _complete_sql() -> tuple[str, Any]:
    """idempotency_complete's UPDATE and the headers field, built once per process.
    Written out (like the INSERT): once per accepted request, and the ORM's UPDATE
    compiler cost several times the statement itself; building the statement each
    time (seven quote_name calls) was measurable too (issue 16)."""
    meta = IdempotencyRecord._meta
    sql = (
        f"UPDATE {_quoted(meta.db_table)} SET {_quoted('state')} = %s, {_quoted('response_status')} = %s, "  # noqa: S608
        f"{_quoted('response_body')} = %s, {_quoted('response_headers')} = %s "
        f"WHERE {_quoted('id')} = %s AND {_quoted('state')} = %s"
    )
    return sql, meta.get_field("response_headers")


def idempotency_complete(
    *, record_id: int, status: int, body: bytes, headers: Mapping[str, str] | None = None
) -> None:
    """Store the response for a claimed key, in the same transaction as the effect."""
    if not connection.in_atomic_block:
        raise RuntimeError("idempotency_complete must run in the transaction of idempotency_begin.")
    sql, headers_field = _complete_sql()
    headers_value = headers_field.get_db_prep_save(dict(headers or {}), connection)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                IdempotencyState.COMPLETED,
                status,
                bytes(body),
                headers_value,
                record_id,
                IdempotencyState.IN_FLIGHT,
            ],
        )
        updated = cursor.rowcount
    if updated != 1:
        raise RuntimeError(f"Idempotency record {record_id} is not in flight in this transaction.")


def idempotency_purge_expired(*, now: datetime | None = None) -> int:
    """Delete expired records in batches (short locks, bounded WAL per statement).
    Returns how many were deleted."""
    now = now or timezone.now()
    deleted_total = 0
    while True:
        batch = list(
            IdempotencyRecord.objects.filter(expires_at__lte=now)
            .order_by("expires_at")
            .values_list("pk", flat=True)[:_PURGE_BATCH]
        )
        if not batch:
            return deleted_total
        deleted, _ = IdempotencyRecord.objects.filter(pk__in=batch, expires_at__lte=now).delete()
        deleted_total += deleted
        if len(batch) < _PURGE_BATCH:
            return deleted_total
