# ruff: noqa: S608 -- only table names and module constants are interpolated; values are parameters.
"""stock_drift: stock counters or reservations that disagree with each other or with orders.

- per sku, from inventory's own conservation check (one set-based query): on hand vs
  the movement journal, reserved vs the sum of held reservations, counters out of range;
- per (order, sku), one statement over reservations, orders and lines:
  `committed_without_confirmed_order` (units left the shelf for an order that is not
  confirmed), `held_for_finished_order` (units held for an order that is cancelled,
  confirmed or missing: nobody will ever use them — release_stock fixes it),
  `confirmed_without_commit` (a confirmed order's line has no committed reservation of
  its quantity).
Stock drift moves no money directly; amount_at_risk stays 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from inventory.choices import ReservationState
from inventory.selectors import stock_check_conservation
from orders.choices import OrderStatus
from reconciliation.choices import IncidentType, Severity

from .base import ChangeSet, DetectionContext, Detector, Finding, IncidentSubject, Scope
from .registry import register
from .sql import (
    fetch,
    lines_cte,
    literal,
    order_scope_sql,
    orders_cte,
    reservations_cte,
    settled_before,
    with_,
)


@register
class StockDrift(Detector):
    name = IncidentType.STOCK_DRIFT
    severity = Severity.MEDIUM
    description = "Stock counters, reservations and orders disagree."

    # The per-(order, sku) checks read one order's reservations, lines and status; the
    # per-sku conservation check is over the catalog and runs whole on every pass.
    incremental = True

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        if ctx.scope.order_ids is None:
            yield from self._conservation()
        yield from self._reservations(ctx)

    def find_changed(self, ctx: DetectionContext, changes: ChangeSet) -> Iterator[Finding]:
        yield from self._conservation()
        yield from self._reservations(replace(ctx, scope=Scope(order_ids=changes.order_ids)))

    def _conservation(self) -> Iterator[Finding]:
        for problem in stock_check_conservation():
            yield self.finding(
                fingerprint_parts=["sku", problem.sku, problem.kind],
                sku=problem.sku,
                details={"kind": problem.kind, "expected": problem.expected, "actual": problem.actual},
            )

    def _reservations(self, ctx: DetectionContext) -> Iterator[Finding]:
        head, params = with_(reservations_cte(), orders_cte(), lines_cte())
        rv_where, rv_params = order_scope_sql(ctx.scope, "rv.order_id")
        ol_where, ol_params = order_scope_sql(ctx.scope, "ol.order_id")
        settled = settled_before(ctx.now)
        sql = head + (
            "SELECT 'committed_without_confirmed_order' AS kind, rv.order_id, rv.sku, rv.quantity, "
            "o.status AS order_status FROM rv LEFT JOIN o ON o.id = rv.order_id "
            f"WHERE rv.state = {literal(ReservationState.COMMITTED)} AND (o.id IS NULL OR o.status NOT IN ({literal(OrderStatus.CONFIRMED, OrderStatus.CANCELLING)}))"
            f"{rv_where} "
            "UNION ALL "
            "SELECT 'held_for_finished_order', rv.order_id, rv.sku, rv.quantity, o.status "
            "FROM rv LEFT JOIN o ON o.id = rv.order_id "
            f"WHERE rv.state = {literal(ReservationState.HELD)} AND rv.updated_at < %s "
            f"AND (o.id IS NULL OR o.status IN ({literal(OrderStatus.CONFIRMED, OrderStatus.CANCELLED)})){rv_where} "
            "UNION ALL "
            "SELECT 'confirmed_without_commit', ol.order_id, ol.sku, ol.quantity, o.status "
            "FROM ol JOIN o ON o.id = ol.order_id "
            "LEFT JOIN rv ON rv.order_id = ol.order_id AND rv.sku = ol.sku "
            f"AND rv.state = {literal(ReservationState.COMMITTED)} "
            f"WHERE o.status = {literal(OrderStatus.CONFIRMED)} AND o.updated_at < %s{ol_where} "
            "AND (rv.id IS NULL OR rv.quantity <> ol.quantity) "
            "ORDER BY 2, 3, 1"
        )
        all_params = [*params, *rv_params, settled, *rv_params, settled, *ol_params]
        yield from self._reservation_findings(fetch(sql, all_params))

    def findings_from(self, rows: Iterable[dict]) -> Iterator[Finding]:
        """A full evaluation from the shared join's per-(order, sku) rows (in the shape and
        order of _reservations' statement) plus the per-sku conservation check."""
        yield from self._conservation()
        yield from self._reservation_findings(rows)

    def _reservation_findings(self, rows: Iterable[dict]) -> Iterator[Finding]:
        for row in rows:
            yield self.finding(
                fingerprint_parts=[row["kind"], row["order_id"], row["sku"]],
                order_id=row["order_id"],
                sku=row["sku"],
                details={
                    "kind": row["kind"],
                    "quantity": row["quantity"],
                    "order_status": row["order_status"],
                },
            )

    def scope_for(self, subject: IncidentSubject) -> Scope:
        # Per-sku problems are re-checked over the catalog (one cheap query).
        if subject.order_id is not None:
            return Scope(order_ids=frozenset({subject.order_id}))
        return Scope()
