"""Payment rows read by hand on the checkout's hot path (issue 16): the same
statement as `Payment.objects.filter(<key>=…).first()` / `select_for_update().get()`,
built once per process instead of compiled by the ORM on every call (three reads
per checkout), and the capture's check that a charge id is nobody else's. Private
to the payments app."""

from __future__ import annotations

import functools

from django.db import connection

from core.sql import column, instance_from_row, select_columns

from .models import Payment


def payment_row(key: str, value: int, *, lock: bool = False) -> Payment | None:
    """The payment whose `key` column (id or order_id, both unique) is `value`;
    `lock`: FOR UPDATE (inside the caller's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(_payment_sql(key, lock), [value])
        row = cursor.fetchone()
    return None if row is None else instance_from_row(Payment, row)


@functools.cache
def _payment_sql(key: str, lock: bool) -> str:
    table = connection.ops.quote_name(Payment._meta.db_table)
    return (
        f"SELECT {select_columns(Payment)} FROM {table} "  # noqa: S608 (identifiers from the model)
        f"WHERE {table}.{column(Payment, key)} = %s" + (" FOR UPDATE" if lock else "")
    )


def charge_id_taken(provider_charge_id: str, payment_id: int) -> bool:
    """Whether another payment than `payment_id` holds `provider_charge_id`: the
    statement of `Payment.objects.filter(provider_charge_id=…).exclude(pk=…).exists()`,
    built once per process."""
    with connection.cursor() as cursor:
        cursor.execute(_charge_id_taken_sql(), [provider_charge_id, payment_id])
        return cursor.fetchone() is not None


@functools.cache
def _charge_id_taken_sql() -> str:
    table = connection.ops.quote_name(Payment._meta.db_table)
    return (
        f"SELECT 1 FROM {table} WHERE {column(Payment, 'provider_charge_id')} = %s "  # noqa: S608 (identifiers from the model)
        f"AND {column(Payment, 'id')} <> %s LIMIT 1"
    )
