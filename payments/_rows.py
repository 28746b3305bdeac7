"""Payment rows read by hand on the checkout's hot path (issue 16): the same
statement as `Payment.objects.filter(<key>=…).first()` / `select_for_update().get()`,
built once per process instead of compiled by the ORM on every call (three reads
per checkout). Private to the payments app."""

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
