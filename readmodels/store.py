"""The read models' writes: one statement shape per model, used alike by the
consumer (one event's facts) and the rebuild (every fact, in batches).

Raw SQL for the finance model (private to readmodels): facts are upserted with their
absolute values and each day's sums move by (new contribution - old contribution), in
one statement, so applying a fact twice — an event redelivered, or an event whose fact
a rebuild already counted — changes nothing, and a fact whose value changed
(incident.updated) moves the sums by the difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TypeVar

from django.db import connection

from .facts import Fact
from .models import FinanceDay, FinanceFact, OrderSearch

T = TypeVar("T")
_FACT = FinanceFact._meta.db_table
_DAY = FinanceDay._meta.db_table
_ROW = "(%s, %s, %s::date, %s, %s::numeric, %s::numeric, %s::timestamptz, %s)"
_SUMS = {
    # column: (fact kind, what it adds)
    "orders": ("order", "1"),
    "captures": ("capture", "1"),
    "revenue": ("capture", "amount"),
    "refunds": ("refund", "1"),
    "refunded": ("refund", "amount"),
    "incidents": ("incident", "1"),
    "money_at_risk": ("incident", "amount"),
    "dismissed": ("dismissed", "1"),
    "dismissed_at_risk": ("dismissed", "amount"),
    "resolved": ("resolved", "1"),
    "resolve_seconds": ("resolved", "seconds"),
}
_APPLY_SQL = """
WITH incoming (key, kind, day, currency, amount, seconds, at, incident_type) AS (VALUES {rows}),
old AS (
    SELECT f.key, f.kind, f.day, f.currency, f.amount, f.seconds FROM {fact} f JOIN incoming i ON i.key = f.key
),
upserted AS (
    INSERT INTO {fact} AS f (key, kind, day, currency, amount, seconds, at, incident_type)
    SELECT key, kind, day, currency, amount, seconds, at, incident_type FROM incoming
    ON CONFLICT (key) DO UPDATE SET
        kind = EXCLUDED.kind, day = EXCLUDED.day, currency = EXCLUDED.currency,
        amount = EXCLUDED.amount, seconds = EXCLUDED.seconds, at = EXCLUDED.at,
        incident_type = EXCLUDED.incident_type
    WHERE (f.kind, f.day, f.currency, f.amount, f.seconds, f.incident_type) IS DISTINCT FROM
        (EXCLUDED.kind, EXCLUDED.day, EXCLUDED.currency, EXCLUDED.amount, EXCLUDED.seconds, EXCLUDED.incident_type)
    RETURNING key, kind, day, currency, amount, seconds
),
delta AS (
    SELECT 1 AS sign, kind, day, currency, amount, seconds FROM upserted
    UNION ALL
    SELECT -1, o.kind, o.day, o.currency, o.amount, o.seconds FROM old o JOIN upserted u ON u.key = o.key
)
INSERT INTO {day} AS d (day, currency, {columns})
SELECT day, currency, {sums} FROM delta GROUP BY day, currency
ON CONFLICT (day, currency) DO UPDATE SET {adds}
"""
_COLUMNS = list(_SUMS)


def _apply_sql(n: int) -> str:
    sums = ", ".join(
        f"coalesce(sum(sign * {what}) FILTER (WHERE kind = '{kind}'), 0)" for kind, what in _SUMS.values()
    )
    return _APPLY_SQL.format(
        rows=", ".join([_ROW] * n),
        fact=_FACT,
        day=_DAY,
        columns=", ".join(_COLUMNS),
        sums=sums,
        adds=", ".join(f"{c} = d.{c} + EXCLUDED.{c}" for c in _COLUMNS),
    )


def batches(items: Iterable[T], size: int = 1000) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def facts_apply(facts: Iterable[Fact], *, batch: int = 1000) -> None:
    """Upsert facts and move the day sums by the difference (see the module docstring)."""
    for chunk in batches(facts, batch):
        # One key once per statement (ON CONFLICT cannot touch a row twice): the last wins.
        unique = list({f.key: f for f in chunk}.values())
        params: list = []
        for f in unique:
            params.extend([f.key, f.kind, f.day, f.currency, f.amount, f.seconds, f.at, f.incident_type])
        with connection.cursor() as cursor:
            cursor.execute(_apply_sql(len(unique)), params)


def finance_clear() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {_FACT}, {_DAY}")


# --- Search -----------------------------------------------------------------------

_ORDER_FIELDS = ["client_id", "customer_email", "currency", "total", "status", "failure_reason", "created_at"]
_PAYMENT_FIELDS = ["payment_id", "payment_status", "charge_id"]


def search_orders_upsert(rows: Sequence[OrderSearch], *, with_key: bool) -> None:
    """Insert or update the orders' own fields (and their Idempotency-Key when known)."""
    if rows:
        OrderSearch.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["order_id"],
            update_fields=_ORDER_FIELDS + (["idempotency_key"] if with_key else []),
        )


def search_payments_upsert(rows: Sequence[OrderSearch], *, with_charge: bool) -> None:
    """Insert or update the payment's fields of the orders (a row may come before its
    order's). Without `with_charge` (a schema-1 event) the known charge id stays."""
    if rows:
        OrderSearch.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["order_id"],
            update_fields=_PAYMENT_FIELDS
            if with_charge
            else [f for f in _PAYMENT_FIELDS if f != "charge_id"],
        )


def search_keys_set(keys: dict[int, str]) -> None:
    OrderSearch.objects.bulk_update(
        [OrderSearch(order_id=order_id, idempotency_key=key) for order_id, key in keys.items()],
        ["idempotency_key"],
        batch_size=1000,
    )


def search_clear() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {OrderSearch._meta.db_table}")
