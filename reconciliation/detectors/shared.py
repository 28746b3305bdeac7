# ruff: noqa: S608 -- only table names and module constants are interpolated; values are parameters.
"""One shared join per full pass, feeding the per-order detectors.

Each per-order detector's own statement (its `find`) joins the provider's net captures,
orders and payments, or reservations, lines and orders, over everything: five hash joins
over the same million rows per pass (0.8-3.4 s each at 1M). A full pass instead reads
every row once, narrowly, to find candidates, then evaluates exactly over those:

1. candidates (ids only): orders FULL JOIN succeeded charges, plus the orders whose count
   of not-refunded ones (ProviderOrderCaptures, kept with the charges) is above one;
   lines FULL JOIN reservations; both keep every order where some detector's condition
   could hold (a superset: see _money_candidates, _stock_candidates).
   Payments are not read over everything at all.
2. exact: the detectors' own WHERE clauses, one flag each, over the candidates' rows only
   (orders FULL JOIN net captures LEFT JOIN payments; lines FULL JOIN reservations LEFT
   JOIN orders), by index probes.

Only flagged rows come back, with the columns each detector's own statement selects; the
detector turns them into findings with the same code (`Detector.findings_from`). `find`
stays the reference — re-checks and incremental passes use it — and
tests/reconciliation/test_shared_join.py checks that both report the same.

What the rewrite relies on (the owning apps' schemas): one payment per order (unique
payments.order_id), one reservation and one line per (order, sku) (unique constraints),
lines reference their order (foreign key), so no join multiplies rows and a reservation
of a missing order has no line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from inventory.choices import ReservationState
from orders.choices import OrderStatus
from payments.choices import PaymentStatus
from reconciliation.choices import IncidentType
from reconciliation.conf import setting

from .base import Scope
from .sql import (
    CHARGES,
    ORDER_CAPTURES,
    REFUNDS,
    SUCCEEDED,
    fetch,
    lines_cte,
    literal,
    net_captures_cte,
    orders_cte,
    payments_cte,
    pending_sla_cutoff,
    reservations_cte,
    settled_before,
    with_,
)

MONEY = (
    IncidentType.CHARGE_WITHOUT_ORDER,
    IncidentType.DUPLICATE_CHARGE,
    IncidentType.AMOUNT_MISMATCH,
    IncidentType.ORDER_CONFIRMED_WITHOUT_CAPTURE,
)
STOCK = (IncidentType.STOCK_DRIFT,)
SHARED = frozenset(str(name) for name in (*MONEY, *STOCK))


@dataclass(frozen=True)
class SharedRows:
    """The rows of one shared evaluation at `now`, per detector name, in the order and
    with the columns of that detector's own statement."""

    now: datetime
    rows: dict[str, list[dict[str, Any]]]


def shared_rows(*, now: datetime, names: Iterable[str]) -> SharedRows:
    names = set(names) & SHARED
    rows: dict[str, list[dict[str, Any]]] = {}
    money = bool(names & {str(n) for n in MONEY})
    stock = str(IncidentType.STOCK_DRIFT) in names
    # The two candidate statements read different tables (orders and charges; lines and
    # reservations): on a second connection the stock one runs while the money one does.
    # Only outside a caller's transaction: another connection sees committed rows only
    # (and each statement reads its own snapshot anyway, read committed, one after the
    # other or side by side).
    concurrent = (
        money and stock and bool(setting("SHARED_JOIN_CONCURRENT")) and not connection.in_atomic_block
    )
    with ThreadPoolExecutor(max_workers=1) if concurrent else nullcontext() as pool:
        stock_candidates = pool.submit(_on_own_connection, _stock_candidates) if pool is not None else None
        with _join_transaction() as cursor:
            with _merge_plans(cursor):
                order_ids, charge_ids = _money_candidates(now) if money else ([], [])
                if stock_candidates is not None:
                    stock_ids = stock_candidates.result()
                else:
                    stock_ids = _stock_candidates() if stock else []
            if money:
                rows.update(_money(now, order_ids=order_ids, charge_ids=charge_ids))
            if stock:
                rows[str(IncidentType.STOCK_DRIFT)] = _stock(now, order_ids=stock_ids)
    return SharedRows(now=now, rows={name: rows[name] for name in names})


@contextmanager
def _join_transaction() -> Iterator[Any]:
    """A transaction (and its cursor) with the shared join's settings, SET LOCAL: JIT
    compilation (on by default above a cost threshold these statements exceed) took 1.4 s
    of a 1M-row statement and saved less; work_mem lets a hash table of the exact
    evaluation (or the planner's hash plan) fit in memory instead of spilling."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('jit', 'off', true), set_config('work_mem', %s, true)",
                       [str(setting("SHARED_JOIN_WORK_MEM"))])  # fmt: skip
        yield cursor


def _on_own_connection(fn: Callable[[], list[int]]) -> list[int]:
    """`fn` on this thread's own connection (Django's connections are per thread), in a
    transaction with the join's settings and merge plans; the connection is closed after."""
    try:
        with _join_transaction() as cursor, _merge_plans(cursor):
            return fn()
    finally:
        connection.close()


# The planner settings a merge plan needs (see _merge_plans), in this transaction only.
MERGE_PLAN_SETTINGS = ("enable_hashjoin", "enable_hashagg", "enable_sort")


@contextmanager
def _merge_plans(cursor) -> Iterator[None]:
    """The candidate statements read every row of two tables that both have an index in
    the join's order (orders' primary key and the charges' order_id index; the unique
    (order_id, sku) indexes of lines and reservations). Walked side by side (a merge full
    join), they need no hash table of a million rows and no sort. The planner prices those
    index scans as random I/O and picks hash joins, which measured 1.5-4x slower at 1M
    rows (docs/benchmarks.md, "Reconciliation"), so hash joins, hash aggregates and sorts
    are turned off for these statements alone (SET LOCAL semantics, then restored: the
    exact evaluation over the candidates keeps its index probes)."""
    if not setting("SHARED_JOIN_MERGE_PLANS"):
        yield
        return
    cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in MERGE_PLAN_SETTINGS))
    before = cursor.fetchone()
    cursor.execute(
        "SELECT " + ", ".join(f"set_config('{name}', 'off', true)" for name in MERGE_PLAN_SETTINGS)
    )
    try:
        yield
    finally:
        cursor.execute(
            "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in MERGE_PLAN_SETTINGS),
            list(before),
        )


def _ids(sql: str, params: list[Any]) -> list[Any]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return sorted({row[0] for row in cursor.fetchall()})


def _money_candidates(now: datetime) -> tuple[list[int], list[str]]:
    """A superset of the orders (and order-less charges) any money detector reports,
    from narrow reads of every row: one join of orders with succeeded charges, the
    orders holding more than one not-refunded succeeded charge (ProviderOrderCaptures,
    kept by triggers with the charges: no count over every order's charges), the orders
    whose charges have refunds. A net capture is a succeeded charge whose own refunded
    total is below its amount (and whose refund rows are too), so a condition on every
    such charge is a condition on every net capture; refund rows only remove net
    captures, which matters only to order_confirmed_without_capture (those orders are
    candidates)."""
    head, params = with_(orders_cte())
    potentially_net = f"c.status = '{SUCCEEDED}' AND c.amount_refunded_minor < c.amount_minor"
    if setting("KEPT_BALANCES"):
        # more than one capture: the count kept with the charges (its partial index)
        nets, many = "", f"UNION SELECT order_id FROM {ORDER_CAPTURES} WHERE open_charges > 1"
    else:
        # ... or counted per order over every charge, in the charges' order-id order (their
        # index, the order the merge with the orders' primary key reads them in)
        nets = f", COUNT(*) FILTER (WHERE {potentially_net}) OVER (PARTITION BY c.order_id) AS nets"
        many = ""
    sql = head + (
        # each (order, charge) pair; an order with no succeeded charge pairs with NULL.
        "SELECT COALESCE(o.id, c.order_id) FROM o FULL JOIN ("
        f"  SELECT c.order_id, c.amount, c.currency, c.amount_minor, c.amount_refunded_minor{nets} "
        f"  FROM {CHARGES} c WHERE c.status = '{SUCCEEDED}' AND c.order_id IS NOT NULL) c ON c.order_id = o.id "
        "WHERE (c.order_id IS NULL "
        f"       AND o.status = {literal(OrderStatus.CONFIRMED)} AND o.updated_at < %s) "  # no capture
        f"{'   OR c.nets > 1 ' if nets else ''}"
        "   OR (c.order_id IS NOT NULL AND c.amount_refunded_minor < c.amount_minor AND ("
        f"       o.id IS NULL OR o.status IN ({literal(OrderStatus.PENDING, OrderStatus.CANCELLED)}) "
        f"       OR (o.status IN ({literal(OrderStatus.CONFIRMED, OrderStatus.CANCELLING)}) "
        "           AND (c.amount <> o.total OR c.currency <> o.currency)))) "
        f"   OR (c.order_id IS NOT NULL AND c.amount_refunded_minor >= c.amount_minor "
        f"       AND o.status = {literal(OrderStatus.CONFIRMED)}) "
        # refunds the charge's own total may not show yet
        f"UNION SELECT c.order_id FROM {REFUNDS} r JOIN {CHARGES} c ON c.provider_id = r.charge_provider_id "
        f"WHERE r.status = '{SUCCEEDED}' AND c.order_id IS NOT NULL "
        f"{many}"
    )
    order_ids = _ids(sql, [*params, settled_before(now)])
    # references that name no order: charge_without_order's, by charge id
    charge_ids = _ids(
        f"SELECT c.provider_id FROM {CHARGES} c WHERE c.order_id IS NULL AND {potentially_net}", []
    )
    return order_ids, charge_ids


def _stock_candidates() -> list[int]:
    """A superset of the orders stock_drift's per-(order, sku) checks report: every
    (order, sku) where the line and the reservation do not pair up as committed with the
    same quantity (a reservation of a missing order has no line: lines reference their
    order), and orders neither confirmed nor cancelling that hold committed stock (read
    through the orders' status index: few)."""
    head, params = with_(lines_cte(), reservations_cte(), orders_cte())
    committed = literal(ReservationState.COMMITTED)
    others = literal(
        *(s for s in OrderStatus.values if s not in (OrderStatus.CONFIRMED, OrderStatus.CANCELLING))
    )
    sql = head + (
        "SELECT COALESCE(ol.order_id, rv.order_id) FROM ol FULL JOIN rv "
        "ON rv.order_id = ol.order_id AND rv.sku = ol.sku "
        f"WHERE ol.order_id IS NULL OR rv.order_id IS NULL OR rv.state <> {committed} "
        "   OR rv.quantity <> ol.quantity "
        f"UNION SELECT rv.order_id FROM o JOIN rv ON rv.order_id = o.id "
        f"WHERE o.status IN ({others}) AND rv.state = {committed}"
    )
    return _ids(sql, params)


def _money(now: datetime, *, order_ids: list[int], charge_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The money detectors' exact conditions over the candidates: every order among them,
    every net capture of those orders (and the order-less candidate charges), their
    payments - for each candidate, exactly the rows the detectors' own statements join."""
    empty: dict[str, list[dict[str, Any]]] = {str(name): [] for name in MONEY}
    if not order_ids and not charge_ids:
        return empty
    head, params = with_(
        net_captures_cte(
            Scope(),
            alias="ncs",
            extra=("AND (c.order_id = ANY(%s) OR c.provider_id = ANY(%s))", [order_ids, charge_ids]),
        ),
        orders_cte(),
        payments_cte(),
    )
    # The capture count per order is taken over the net captures alone, in order-id order
    # (the charges' order_id index), before the joins: no sort of the joined million rows.
    head += ", nc AS (SELECT ncs.*, COUNT(*) OVER (PARTITION BY ncs.order_id) AS captures FROM ncs) "
    pending = literal(OrderStatus.PENDING)
    confirmed = literal(OrderStatus.CONFIRMED)
    cancelled = literal(OrderStatus.CANCELLED)
    keeping = literal(OrderStatus.CONFIRMED, OrderStatus.CANCELLING)
    # Each flag is the WHERE clause of the detector named after it (see its module),
    # written for the outer join: `nc.id IS NULL` = the order has no net capture.
    sql = head + (
        "SELECT * FROM (SELECT nc.id AS nc_id, nc.provider_id, nc.reference, nc.order_id, "
        "nc.amount_minor, nc.amount, nc.refunded_minor, nc.currency, nc.created, "
        "o.id AS o_id, o.status AS order_status, o.failure_reason, o.total, "
        "o.currency AS order_currency, o.updated_at AS order_updated_at, "
        "p.id AS payment_id, p.status AS payment_status, p.provider_charge_id, "
        # charge_without_order
        "COALESCE(nc.id IS NOT NULL AND nc.created < %s AND (o.id IS NULL "
        f"  OR (o.status = {pending} AND o.created_at < %s) "
        f"  OR (o.status = {cancelled} AND (p.provider_charge_id IS NULL "
        "      OR p.provider_charge_id <> nc.provider_id))), FALSE) AS is_cwo, "
        # duplicate_charge (the capture count is per order, over every net capture)
        f"COALESCE(nc.id IS NOT NULL AND o.id IS NOT NULL AND (o.status IN ({keeping}) "
        f"  OR (o.status = {pending} AND o.created_at >= %s)) "
        "  AND nc.captures > 1, FALSE) AS is_dup, "
        # amount_mismatch
        f"COALESCE(nc.id IS NOT NULL AND o.status IN ({keeping}) "
        "  AND (p.provider_charge_id IS NULL OR p.provider_charge_id = nc.provider_id) "
        "  AND (nc.amount <> o.total OR nc.currency <> o.currency), FALSE) AS is_am, "
        # order_confirmed_without_capture
        f"COALESCE(nc.id IS NULL AND o.status = {confirmed} AND o.updated_at < %s "
        "  AND (p.status IS NULL OR p.status <> %s), FALSE) AS is_ocwc "
        "FROM (SELECT * FROM o WHERE o.id = ANY(%s)) o FULL JOIN nc ON nc.order_id = o.id "
        "LEFT JOIN p ON p.order_id = COALESCE(nc.order_id, o.id)) j "
        "WHERE is_cwo OR is_dup OR is_am OR is_ocwc"
    )
    settled = settled_before(now)
    sla = pending_sla_cutoff(now)
    rows = fetch(sql, [*params, settled, sla, sla, settled, PaymentStatus.REFUNDED, order_ids])

    cwo, dup, am, ocwc = [], [], [], []
    for r in rows:
        if r["is_cwo"]:
            why = (
                "order_missing"
                if r["o_id"] is None
                else "order_pending_past_sla"
                if r["order_status"] == OrderStatus.PENDING
                else "order_cancelled_unrefunded"
            )
            cwo.append(
                {
                    "nc_id": r["nc_id"],
                    "provider_id": r["provider_id"],
                    "reference": r["reference"],
                    "order_id": r["order_id"],
                    "amount_minor": r["amount_minor"],
                    "refunded_minor": r["refunded_minor"],
                    "currency": r["currency"],
                    "created": r["created"],
                    "order_status": r["order_status"],
                    "failure_reason": r["failure_reason"],
                    "payment_id": r["payment_id"],
                    "payment_status": r["payment_status"],
                    "recorded_charge_id": r["provider_charge_id"],
                    "why": why,
                }
            )
        if r["is_dup"]:
            dup.append(
                {
                    "nc_id": r["nc_id"],
                    "reference": r["reference"],
                    "order_id": r["order_id"],
                    "provider_id": r["provider_id"],
                    "amount_minor": r["amount_minor"],
                    "refunded_minor": r["refunded_minor"],
                    "currency": r["currency"],
                    "created": r["created"],
                    "recorded": 1 if r["provider_charge_id"] == r["provider_id"] else 0,
                }
            )
        if r["is_am"]:
            am.append(
                {
                    "nc_id": r["nc_id"],
                    "provider_id": r["provider_id"],
                    "reference": r["reference"],
                    "order_id": r["order_id"],
                    "amount": r["amount"],
                    "currency": r["currency"],
                    "total": r["total"],
                    "order_currency": r["order_currency"],
                    "payment_id": r["payment_id"],
                }
            )
        if r["is_ocwc"]:
            ocwc.append(
                {
                    "id": r["o_id"],
                    "total": r["total"],
                    "currency": r["order_currency"],
                    "updated_at": r["order_updated_at"],
                    "payment_id": r["payment_id"],
                    "payment_status": r["payment_status"],
                    "provider_charge_id": r["provider_charge_id"],
                }
            )
    # The detectors' own ORDER BY (duplicate_charge keeps the first capture of each order).
    cwo.sort(key=lambda r: (r["created"], r["nc_id"]))
    dup.sort(key=lambda r: (r["order_id"], -r["recorded"], r["created"], r["nc_id"]))
    am.sort(key=lambda r: (r["order_id"], r["nc_id"]))
    ocwc.sort(key=lambda r: r["id"])
    return {
        str(IncidentType.CHARGE_WITHOUT_ORDER): cwo,
        str(IncidentType.DUPLICATE_CHARGE): dup,
        str(IncidentType.AMOUNT_MISMATCH): am,
        str(IncidentType.ORDER_CONFIRMED_WITHOUT_CAPTURE): ocwc,
    }


def _stock(now: datetime, *, order_ids: list[int]) -> list[dict[str, Any]]:
    """stock_drift's exact per-(order, sku) conditions over the candidate orders."""
    if not order_ids:
        return []
    head, params = with_(lines_cte(), reservations_cte(), orders_cte())
    committed = literal(ReservationState.COMMITTED)
    held = literal(ReservationState.HELD)
    # Per stock_drift kind, its WHERE clause (see stock_drift._reservations). The line's
    # committed reservation is the (order, sku) reservation when its state is committed:
    # one reservation per (order, sku).
    sql = head + (
        "SELECT * FROM (SELECT rv.order_id AS rv_order_id, rv.sku AS rv_sku, rv.quantity AS rv_quantity, "
        "ol.order_id AS ol_order_id, ol.sku AS ol_sku, ol.quantity AS ol_quantity, o.status AS order_status, "
        f"COALESCE(rv.state = {committed} AND (o.id IS NULL OR o.status NOT IN "
        f"  ({literal(OrderStatus.CONFIRMED, OrderStatus.CANCELLING)})), FALSE) AS is_committed, "
        f"COALESCE(rv.state = {held} AND rv.updated_at < %s AND (o.id IS NULL OR o.status IN "
        f"  ({literal(OrderStatus.CONFIRMED, OrderStatus.CANCELLED)})), FALSE) AS is_held, "
        f"COALESCE(ol.order_id IS NOT NULL AND o.status = {literal(OrderStatus.CONFIRMED)} "
        f"  AND o.updated_at < %s AND (rv.id IS NULL OR rv.state <> {committed} "
        "  OR rv.quantity <> ol.quantity), FALSE) AS is_uncommitted "
        "FROM (SELECT * FROM ol WHERE ol.order_id = ANY(%s)) ol "
        "FULL JOIN (SELECT * FROM rv WHERE rv.order_id = ANY(%s)) rv "
        "ON rv.order_id = ol.order_id AND rv.sku = ol.sku "
        "LEFT JOIN o ON o.id = COALESCE(rv.order_id, ol.order_id)) j "
        "WHERE is_committed OR is_held OR is_uncommitted"
    )
    settled = settled_before(now)
    out: list[dict[str, Any]] = []
    for r in fetch(sql, [*params, settled, settled, order_ids, order_ids]):
        for kind, flag, prefix in (
            ("committed_without_confirmed_order", "is_committed", "rv"),
            ("held_for_finished_order", "is_held", "rv"),
            ("confirmed_without_commit", "is_uncommitted", "ol"),
        ):
            if r[flag]:
                out.append(
                    {
                        "kind": kind,
                        "order_id": r[f"{prefix}_order_id"],
                        "sku": r[f"{prefix}_sku"],
                        "quantity": r[f"{prefix}_quantity"],
                        "order_status": r["order_status"],
                    }
                )
    out.sort(key=lambda r: (r["order_id"], r["sku"], r["kind"]))
    return out
