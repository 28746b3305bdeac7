# ruff: noqa: S608 -- only table names and module constants are interpolated; values are parameters.
"""Building blocks of the detectors' SQL.

Other apps' rows arrive as read-only `.values()` querysets from their selectors; their
SQL is embedded here as common table expressions with an explicit column list, so a
detector is one statement that PostgreSQL plans as joins (hash or merge joins over the
whole set), never a Python loop over rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection

from inventory.selectors import reservations_reconciliation_values
from orders.selectors import order_lines_reconciliation_values, orders_reconciliation_values
from payments.selectors import payments_reconciliation_values, refunds_reconciliation_values
from reconciliation.conf import setting
from reconciliation.models import ProviderCharge, ProviderNetByHour, ProviderOrderCaptures, ProviderRefund

from .base import Scope

CHARGES = ProviderCharge._meta.db_table
REFUNDS = ProviderRefund._meta.db_table
PROVIDER_NETS = ProviderNetByHour._meta.db_table
ORDER_CAPTURES = ProviderOrderCaptures._meta.db_table
SUCCEEDED = "succeeded"  # a provider charge's or refund's status (the provider's word)

ORDER_COLUMNS = ("id", "status", "failure_reason", "total", "currency", "created_at", "updated_at")
PAYMENT_COLUMNS = (
    "id", "order_id", "status", "amount", "currency", "provider_charge_id", "refunded_amount", "updated_at",
)  # fmt: skip
REFUND_COLUMNS = ("id", "payment_id", "status", "amount", "currency", "provider_refund_id", "created_at")
RESERVATION_COLUMNS = ("id", "order_id", "sku", "quantity", "state", "updated_at")
LINE_COLUMNS = ("order_id", "sku", "quantity")


def cte(name: str, queryset, columns: Sequence[str]) -> tuple[str, list[Any]]:
    """`name (columns) AS (<the queryset's SQL>)` and its parameters."""
    sql, params = queryset.query.sql_with_params()
    # PostgreSQL materialises a CTE its statement reads more than once (stock_drift reads
    # `o` and `rv` three times): a full copy of the table, no index, no predicate pushed
    # down - a scoped re-check then scans 1M rows per probe. These CTEs are plain reads of
    # one table: inlined, each reference plans like the table itself.
    return f"{name} ({', '.join(columns)}) AS NOT MATERIALIZED ({sql})", list(params)


def orders_cte() -> tuple[str, list[Any]]:
    return cte("o", orders_reconciliation_values(), ORDER_COLUMNS)


def payments_cte() -> tuple[str, list[Any]]:
    return cte("p", payments_reconciliation_values(), PAYMENT_COLUMNS)


def refunds_cte() -> tuple[str, list[Any]]:
    return cte("rf", refunds_reconciliation_values(), REFUND_COLUMNS)


def reservations_cte() -> tuple[str, list[Any]]:
    return cte("rv", reservations_reconciliation_values(), RESERVATION_COLUMNS)


def lines_cte() -> tuple[str, list[Any]]:
    return cte("ol", order_lines_reconciliation_values(), LINE_COLUMNS)


def net_captures_cte(
    scope: Scope, *, alias: str = "nc", extra: tuple[str, list[Any]] | None = None
) -> tuple[str, list[Any]]:
    """Succeeded provider charges that still hold money: refunded = the larger of the
    charge's own total (last sync) and the sum of its synced succeeded refunds.
    `extra`: one more condition on the charges `c` (starting with AND) and its parameters."""
    where, params = charge_scope_sql(scope, "c")
    if extra is not None:
        where, params = f"{where} {extra[0]}", [*params, *extra[1]]
    sql = (
        f"{alias} AS (SELECT * FROM (SELECT c.id, c.provider_id, c.reference, c.order_id, "
        "c.amount_minor, c.amount, c.currency, c.created, "
        "CASE WHEN c.amount_refunded_minor > COALESCE(r.total, 0) THEN c.amount_refunded_minor "
        "ELSE COALESCE(r.total, 0) END AS refunded_minor "
        # SUM of a bigint is numeric in PostgreSQL: cast back so callers get integers.
        f"FROM {CHARGES} c LEFT JOIN (SELECT charge_provider_id, CAST(SUM(amount_minor) AS BIGINT) AS total "
        f"FROM {REFUNDS} WHERE status = %s GROUP BY charge_provider_id) r "
        "ON r.charge_provider_id = c.provider_id "
        f"WHERE c.status = %s{where}) x WHERE refunded_minor < amount_minor)"
    )
    return sql, [SUCCEEDED, SUCCEEDED, *params]


def literal(*values: str) -> str:
    """Trusted constants (the owning apps' choices) as SQL string literals: 'a', 'b'.
    A state written into a detector's statement reads as the choice it is."""
    if any("'" in value or "\\" in value for value in values):
        raise ValueError(f"not a plain constant: {values!r}")
    return ", ".join(f"'{value}'" for value in values)


def in_sql(column: str, values: Iterable[Any]) -> tuple[str, list[Any]]:
    values = list(values)
    if not values:
        return " AND 1 = 0", []
    # One array parameter: an incremental pass's scope can hold thousands of ids
    # (a statement takes at most 65,535 parameters), and the plan stays one index probe.
    return f" AND {column} = ANY(%s)", [values]


def charge_scope_sql(scope: Scope, alias: str) -> tuple[str, list[Any]]:
    """Extra WHERE conditions (each starting with AND) narrowing charges to a scope."""
    sql, params = "", []
    if scope.references is not None:
        part, values = in_sql(f"{alias}.reference", sorted(scope.references))
        sql, params = sql + part, params + values
    if scope.order_ids is not None:
        part, values = in_sql(f"{alias}.order_id", sorted(scope.order_ids))
        sql, params = sql + part, params + values
    if scope.charge_ids is not None:
        part, values = in_sql(f"{alias}.provider_id", sorted(scope.charge_ids))
        sql, params = sql + part, params + values
    return sql, params


def order_scope_sql(scope: Scope, column: str) -> tuple[str, list[Any]]:
    if scope.order_ids is None:
        return "", []
    return in_sql(column, sorted(scope.order_ids))


def with_(*ctes: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    sql = "WITH " + ", ".join(c[0] for c in ctes) + " "
    params: list[Any] = []
    for _, p in ctes:
        params.extend(p)
    return sql, params


def fetch(sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    """Rows as dicts. The result is the set of disagreements (small), not the data scanned."""
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def settled_before(now: datetime) -> datetime:
    return now - timedelta(seconds=float(setting("SETTLE_SECONDS")))


def pending_sla_cutoff(now: datetime) -> datetime:
    return now - timedelta(seconds=float(setting("PENDING_ORDER_SLA_SECONDS")))


def provider_hour(moment: datetime) -> datetime:
    """The start of `moment`'s whole UTC hour: the ProviderNetByHour row it is summed in
    (migration 0009 bins with date_bin('1 hour', created, '2000-01-01 00:00:00+00'))."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
