"""What the provider does: charges, refunds, lists, settlement; with Stripe's
idempotency semantics for the writes."""

from __future__ import annotations

import calendar
import contextlib
import datetime
import functools
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, connection, models, transaction
from django.db.models import Q

from . import webhooks
from .errors import ApiError
from .faults import FaultDecision
from .models import Charge, ChargeStatus, IdempotencyKey, Refund
from .validation import ChargeInput, RefundInput

_CHARGE_ID = re.compile(r"^ch_[0-9a-f]{24}$")
_REFUND_ID = re.compile(r"^re_[0-9a-f]{24}$")

# The sandbox's test cards: token -> failure code (None: the charge succeeds).
PAYMENT_METHODS: dict[str, str | None] = {
    "pm_card_ok": None,
    "pm_card_declined": "card_declined",
    "pm_card_insufficient_funds": "insufficient_funds",
}


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str
    replayed: bool


class _KeyTaken(Exception):
    pass


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _replay(row: IdempotencyKey, endpoint: str, request_hash: str) -> StoredResponse:
    if row.endpoint != endpoint or row.request_hash != request_hash:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was already used with different parameters.",
            {"endpoint": row.endpoint},
        )
    if row.response_status is None:  # cannot happen: written in the same transaction
        raise ApiError(409, "idempotency_key_in_use", "A request with this Idempotency-Key is in flight.")
    return StoredResponse(row.response_status, row.response_body, replayed=True)


def run_idempotent(
    *, api_key: str, key: str, endpoint: str, params: dict, execute: Callable[[], tuple[int, dict]]
) -> StoredResponse:
    """Run `execute` once per (API key, Idempotency-Key) and store its response.

    The key row is inserted first, in the same transaction as the work. A second
    request with the same key blocks on the unique index until the first commits,
    then fails the insert and replays the stored response: one charge, however many
    concurrent requests. An ApiError raised by `execute` rolls everything back, so
    errors are not stored and the caller may fix the request and reuse the key.
    """
    api_key_hash = _hash(api_key)
    request_hash = _hash(json.dumps(params, sort_keys=True, separators=(",", ":")))

    def existing() -> IdempotencyKey | None:
        return IdempotencyKey.objects.filter(api_key_hash=api_key_hash, key=key).first()

    row = existing()
    if row is not None:
        return _replay(row, endpoint, request_hash)
    try:
        with transaction.atomic():
            try:
                row = IdempotencyKey.objects.create(
                    api_key_hash=api_key_hash, key=key, endpoint=endpoint, request_hash=request_hash
                )
            except IntegrityError as exc:
                raise _KeyTaken from exc
            status, body = execute()
            row.response_status = status
            row.response_body = json.dumps(body)
            row.save(update_fields=["response_status", "response_body"])
    except _KeyTaken:
        row = existing()
        if row is None:
            raise ApiError(
                409, "idempotency_key_in_use", "A request with this Idempotency-Key is in flight."
            ) from None
        return _replay(row, endpoint, request_hash)
    return StoredResponse(row.response_status, row.response_body, replayed=False)


def charge_create(
    *, api_key: str, key: str, params: dict, data: ChargeInput, faults: FaultDecision
) -> StoredResponse:
    """run_idempotent's semantics in one statement (issue 16: 7 round trips per charge
    were 2 of the checkout's slowest milliseconds): the charge's response is known
    before it is written, so the key row goes in with its response and the charge
    row with it, in one INSERT … ON CONFLICT DO NOTHING of the key and an INSERT of
    the charge that runs only when the key was new. A concurrent request with the
    same key blocks on the unique index until the first commits, then inserts
    neither and replays the stored response: one charge, however many requests.
    With a webhook URL the event row is written in the same transaction."""
    endpoint = "POST /v1/charges"
    failure_code = PAYMENT_METHODS[data.payment_method]
    if failure_code is None and faults.decline:
        failure_code = "card_declined"
    charge = Charge(
        public_id=f"ch_{secrets.token_hex(12)}",
        amount=data.amount,
        currency=data.currency,
        payment_method=data.payment_method,
        reference=data.reference,
        status=ChargeStatus.FAILED if failure_code else ChargeStatus.SUCCEEDED,
        failure_code=failure_code,
        created=int(time.time()),
    )
    # A decline is a normal outcome, not an error: 200 with status "failed".
    body = charge.as_api()
    api_key_hash = _hash(api_key)
    request_hash = _hash(json.dumps(params, sort_keys=True, separators=(",", ":")))
    response_body = json.dumps(body)
    key_row = IdempotencyKey(
        api_key_hash=api_key_hash,
        key=key,
        endpoint=endpoint,
        request_hash=request_hash,
        response_status=200,
        response_body=response_body,
    )
    url = webhooks.webhook_url()
    # No webhook: the one statement is its own transaction (autocommit).
    with transaction.atomic() if url else contextlib.nullcontext():
        values = [_prep(key_row, f) for f in _key_fields()] + [_prep(charge, f) for f in _charge_fields()]
        with connection.cursor() as cursor:
            cursor.execute(_charge_with_key_sql(), values)
            inserted = cursor.fetchone() is not None
        if inserted and url:
            webhooks.enqueue("charge.failed" if failure_code else "charge.succeeded", body, faults, url=url)
    if not inserted:
        row = IdempotencyKey.objects.filter(api_key_hash=api_key_hash, key=key).first()
        if row is None:  # taken, then removed (a sandbox reset) before this read
            raise ApiError(409, "idempotency_key_in_use", "A request with this Idempotency-Key is in flight.")
        return _replay(row, endpoint, request_hash)
    return StoredResponse(200, response_body, replayed=False)


def _prep(instance: models.Model, field: models.Field) -> object:
    return field.get_db_prep_save(field.pre_save(instance, add=True), connection)


@functools.cache
def _key_fields() -> list[models.Field]:
    return [f for f in IdempotencyKey._meta.concrete_fields if not f.primary_key]


@functools.cache
def _charge_fields() -> list[models.Field]:
    return [f for f in Charge._meta.concrete_fields if not f.primary_key]


@functools.cache
def _charge_with_key_sql() -> str:
    """Built once per process: the key's INSERT … ON CONFLICT DO NOTHING in a CTE, the
    charge's INSERT only when the CTE inserted (its RETURNING: one row, or none)."""
    quote = connection.ops.quote_name

    def cols(fields: list[models.Field]) -> str:
        return ", ".join(quote(str(f.column)) for f in fields)

    def marks(fields: list[models.Field]) -> str:
        return ", ".join(["%s"] * len(fields))

    key_fields, charge_fields = _key_fields(), _charge_fields()
    conflict = ", ".join(
        quote(str(IdempotencyKey._meta.get_field(n).column)) for n in ("api_key_hash", "key")
    )
    return (
        f"WITH k AS (INSERT INTO {quote(IdempotencyKey._meta.db_table)} ({cols(key_fields)}) "  # noqa: S608
        f"VALUES ({marks(key_fields)}) ON CONFLICT ({conflict}) DO NOTHING RETURNING 1) "
        f"INSERT INTO {quote(Charge._meta.db_table)} ({cols(charge_fields)}) "
        f"SELECT {marks(charge_fields)} WHERE EXISTS (SELECT 1 FROM k) RETURNING {quote(str(Charge._meta.pk.column))}"
    )


def refund_create(
    *, api_key: str, key: str, params: dict, data: RefundInput, faults: FaultDecision
) -> StoredResponse:
    def execute() -> tuple[int, dict]:
        # Locked: two refunds of one charge (different keys) must not both pass the check.
        charge = Charge.objects.select_for_update().filter(public_id=data.charge).first()
        if charge is None:
            raise ApiError(404, "resource_missing", "No such charge.", {"param": "charge"})
        if charge.status != ChargeStatus.SUCCEEDED:
            raise ApiError(400, "charge_not_refundable", "Only a succeeded charge can be refunded.")
        refundable = charge.amount - charge.amount_refunded
        amount = refundable if data.amount is None else data.amount
        details = {
            "charge": charge.public_id,
            "amount": charge.amount,
            "amount_refunded": charge.amount_refunded,
        }
        if refundable == 0:
            raise ApiError(400, "charge_already_refunded", "This charge is fully refunded.", details)
        if amount > refundable:
            raise ApiError(
                400,
                "amount_exceeds_refundable",
                f"Refund of {amount} exceeds the refundable {refundable}.",
                {**details, "requested": amount, "refundable": refundable},
            )
        refund = Refund.objects.create(
            public_id=f"re_{secrets.token_hex(12)}",
            charge=charge,
            amount=amount,
            currency=charge.currency,
            created=int(time.time()),
        )
        charge.amount_refunded += amount
        charge.save(update_fields=["amount_refunded"])
        body = refund.as_api()
        webhooks.enqueue("refund.succeeded", body, faults)
        return 200, body

    return run_idempotent(
        api_key=api_key, key=key, endpoint="POST /v1/refunds", params=params, execute=execute
    )


def _page(queryset, model, *, created_gte, starting_after, limit) -> dict:
    """Ascending (created, id) keyset pagination: stable while new rows arrive."""
    if created_gte is not None:
        queryset = queryset.filter(created__gte=created_gte)
    if starting_after is not None:
        cursor = model.objects.filter(public_id=starting_after).values("created", "id").first()
        if cursor is None:
            raise ApiError(
                400, "resource_missing", "starting_after names no object.", {"param": "starting_after"}
            )
        queryset = queryset.filter(
            Q(created__gt=cursor["created"]) | Q(created=cursor["created"], id__gt=cursor["id"])
        )
    rows = list(queryset.order_by("created", "id")[: limit + 1])
    return {"object": "list", "data": [row.as_api() for row in rows[:limit]], "has_more": len(rows) > limit}


def charge_list(*, reference, created_gte, starting_after, limit) -> dict:
    queryset = Charge.objects.all()
    if reference is not None:
        queryset = queryset.filter(reference=reference)
    return _page(queryset, Charge, created_gte=created_gte, starting_after=starting_after, limit=limit)


def refund_list(*, charge, created_gte, starting_after, limit) -> dict:
    queryset = Refund.objects.select_related("charge")
    if charge is not None:
        queryset = queryset.filter(charge__public_id=charge)
    return _page(queryset, Refund, created_gte=created_gte, starting_after=starting_after, limit=limit)


def charge_get(charge_id: str) -> dict:
    # Checked before the query: an id with a NUL byte would make PostgreSQL fail.
    charge = Charge.objects.filter(public_id=charge_id).first() if _CHARGE_ID.match(charge_id) else None
    if charge is None:
        raise ApiError(404, "resource_missing", "No such charge.", {"id": charge_id[:64]})
    return charge.as_api()


def refund_get(refund_id: str) -> dict:
    refund = None
    if _REFUND_ID.match(refund_id):
        refund = Refund.objects.select_related("charge").filter(public_id=refund_id).first()
    if refund is None:
        raise ApiError(404, "resource_missing", "No such refund.", {"id": refund_id[:64]})
    return refund.as_api()


SETTLEMENT_COLUMNS = (
    "date",
    "currency",
    "charges_count",
    "charges_amount",
    "refunds_count",
    "refunds_amount",
    "net",
)


def settlement(day: datetime.date) -> dict:
    """Money moved on one UTC day: succeeded charges in, refunds out, per currency."""
    start = calendar.timegm(day.timetuple())
    end = start + 86400
    charges = Charge.objects.filter(status=ChargeStatus.SUCCEEDED, created__gte=start, created__lt=end)
    refunds = Refund.objects.select_related("charge").filter(created__gte=start, created__lt=end)
    transactions = [
        {
            "type": "charge",
            "id": c.public_id,
            "charge": c.public_id,
            "amount": c.amount,
            "currency": c.currency,
            "created": c.created,
        }
        for c in charges.order_by("created", "id")
    ] + [
        {
            "type": "refund",
            "id": r.public_id,
            "charge": r.charge.public_id,
            "amount": -r.amount,
            "currency": r.currency,
            "created": r.created,
        }
        for r in refunds.order_by("created", "id")
    ]
    totals: dict[str, dict] = {}
    for item in transactions:
        row = totals.setdefault(
            item["currency"],
            {
                "date": day.isoformat(),
                "currency": item["currency"],
                "charges_count": 0,
                "charges_amount": 0,
                "refunds_count": 0,
                "refunds_amount": 0,
                "net": 0,
            },
        )
        row[f"{item['type']}s_count"] += 1
        row[f"{item['type']}s_amount"] += abs(item["amount"])
        row["net"] += item["amount"]
    transactions.sort(key=lambda item: (item["created"], item["id"]))
    return {
        "object": "settlement",
        "date": day.isoformat(),
        "by_currency": [totals[currency] for currency in sorted(totals)],
        "transactions": transactions,
    }
