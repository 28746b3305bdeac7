# ruff: noqa: S608 -- only table names and module constants are interpolated; values are parameters.
"""charge_without_order: the provider holds a capture and no confirmed order owns it.

The costliest failure (the customer paid, Concord does not know). Three shapes:
- `order_missing`: the reference names no order (or no order at all);
- `order_pending_past_sla`: the order is still pending after PENDING_ORDER_SLA_SECONDS
  (e.g. the charge timed out after the provider committed it and nothing recovered);
- `order_cancelled_unrefunded`: the order was cancelled and this capture is not the one
  payments recorded (that one, unrefunded, is refund_missing's), e.g. a timeout after
  commit raced a cancellation.
One incident per charge; charges younger than SETTLE_SECONDS are left to their saga.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

from orders.choices import OrderStatus
from reconciliation.amounts import minor_to_major
from reconciliation.choices import IncidentType, Severity

from .base import ChangeSet, DetectionContext, Detector, Finding, IncidentSubject, Scope
from .registry import register
from .sql import (
    fetch,
    literal,
    net_captures_cte,
    orders_cte,
    payments_cte,
    pending_sla_cutoff,
    settled_before,
    with_,
)


@register
class ChargeWithoutOrder(Detector):
    name = IncidentType.CHARGE_WITHOUT_ORDER
    severity = Severity.CRITICAL
    description = "A capture at the provider that no confirmed order owns."
    uses_provider_records = True
    incremental = True

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        head, params = with_(net_captures_cte(ctx.scope), orders_cte(), payments_cte())
        sql = head + (
            "SELECT nc.provider_id, nc.reference, nc.order_id, nc.amount_minor, nc.refunded_minor, "
            "nc.currency, nc.created, o.status AS order_status, o.failure_reason, "
            "p.id AS payment_id, p.status AS payment_status, p.provider_charge_id AS recorded_charge_id, "
            "CASE WHEN o.id IS NULL THEN 'order_missing' "
            f"     WHEN o.status = {literal(OrderStatus.PENDING)} THEN 'order_pending_past_sla' "
            "     ELSE 'order_cancelled_unrefunded' END AS why "
            "FROM nc LEFT JOIN o ON o.id = nc.order_id LEFT JOIN p ON p.order_id = nc.order_id "
            "WHERE nc.created < %s AND ("
            "  o.id IS NULL"
            f"  OR (o.status = {literal(OrderStatus.PENDING)} AND o.created_at < %s)"
            f"  OR (o.status = {literal(OrderStatus.CANCELLED)} AND (p.provider_charge_id IS NULL "
            "      OR p.provider_charge_id <> nc.provider_id))"
            ") ORDER BY nc.created, nc.id"
        )
        yield from self.findings_from(
            fetch(sql, [*params, settled_before(ctx.now), pending_sla_cutoff(ctx.now)])
        )

    def findings_from(self, rows: Iterable[dict]) -> Iterator[Finding]:
        """Findings from rows in the shape and order of find's statement."""
        for row in rows:
            yield self.finding(
                fingerprint_parts=[row["provider_id"]],
                order_id=row["order_id"] if row["order_status"] is not None else None,
                payment_id=row["payment_id"],
                charge_id=row["provider_id"],
                amount_at_risk=minor_to_major(row["amount_minor"] - row["refunded_minor"], row["currency"]),
                currency=row["currency"],
                details={
                    "reason": row["why"],
                    "reference": row["reference"],
                    "referenced_order_id": row["order_id"],
                    "order_status": row["order_status"],
                    "order_failure_reason": row["failure_reason"],
                    "payment_status": row["payment_status"],
                    "recorded_charge_id": row["recorded_charge_id"],
                    "amount_minor": row["amount_minor"],
                    "refunded_minor": row["refunded_minor"],
                    "created": row["created"].isoformat(),
                },
            )

    def find_changed(self, ctx: DetectionContext, changes: ChangeSet) -> Iterator[Finding]:
        # A charge whose reference names no order has no order id to be scoped by: the
        # changed ones are listed by charge id. A charge in both scopes is reported once.
        seen: set[str] = set()
        for scope in (Scope(order_ids=changes.order_ids), Scope(charge_ids=changes.charge_ids)):
            if not (scope.order_ids or scope.charge_ids):
                continue
            for finding in self.find(replace(ctx, scope=scope)):
                if finding.fingerprint not in seen:
                    seen.add(finding.fingerprint)
                    yield finding

    def scope_for(self, subject: IncidentSubject) -> Scope:
        if subject.charge_id:
            return Scope(charge_ids=frozenset({subject.charge_id}))
        return super().scope_for(subject)

    def provider_references_for(self, subject: IncidentSubject) -> list[str]:
        reference = subject.details.get("reference")
        return [reference] if reference else super().provider_references_for(subject)
