# ruff: noqa: S608 -- only table names and module constants are interpolated; values are parameters.
"""duplicate_charge: an order that should hold one capture holds more than one at the provider.

A net capture is a succeeded charge not fully refunded (see sql.net_captures_cte). The
order's own charge is the one payments recorded (Payment.provider_charge_id) when it is
among them, else the provider's earliest; every other capture is money at risk.

Only orders that should keep a capture are looked at: confirmed or being cancelled, or
pending within their SLA (a saga retry that charged twice). A reference with no order,
an order pending past its SLA or a cancelled one is charge_without_order's: each of its
captures is an orphan there, so the same money is never counted by both detectors.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from orders.choices import OrderStatus
from reconciliation.amounts import minor_to_major
from reconciliation.choices import IncidentType, Severity

from .base import DetectionContext, Detector, Finding, IncidentSubject, Scope
from .registry import register
from .sql import fetch, literal, net_captures_cte, orders_cte, payments_cte, pending_sla_cutoff, with_


@register
class DuplicateCharge(Detector):
    name = IncidentType.DUPLICATE_CHARGE
    severity = Severity.HIGH
    description = "More than one net capture at the provider for one order."
    uses_provider_records = True
    incremental = True

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        head, params = with_(net_captures_cte(ctx.scope), orders_cte(), payments_cte())
        # Set-based: the database groups and counts; only duplicated orders' captures return.
        sql = head + (
            "SELECT nc.reference, nc.order_id, nc.provider_id, nc.amount_minor, nc.refunded_minor, "
            "nc.currency, nc.created, "
            "CASE WHEN p.provider_charge_id = nc.provider_id THEN 1 ELSE 0 END AS recorded "
            "FROM nc JOIN o ON o.id = nc.order_id LEFT JOIN p ON p.order_id = nc.order_id "
            f"WHERE (o.status IN ({literal(OrderStatus.CONFIRMED, OrderStatus.CANCELLING)}) "
            f"       OR (o.status = {literal(OrderStatus.PENDING)} AND o.created_at >= %s)) "
            "AND nc.order_id IN (SELECT order_id FROM nc WHERE order_id IS NOT NULL "
            "                    GROUP BY order_id HAVING COUNT(*) > 1) "
            # Local id breaks ties within one provider second: the sync inserts in the
            # provider's own (created, id) order.
            "ORDER BY nc.order_id, recorded DESC, nc.created, nc.id"
        )
        yield from self.findings_from(fetch(sql, [*params, pending_sla_cutoff(ctx.now)]))

    def findings_from(self, rows: Iterable[dict]) -> Iterator[Finding]:
        """Findings from rows in the shape and order of find's statement."""
        by_order: dict[int, list[dict]] = defaultdict(list)
        for row in rows:
            by_order[row["order_id"]].append(row)
        for charges in by_order.values():
            yield self._finding(charges)

    def _finding(self, charges: list[dict]) -> Finding:
        kept, extras = charges[0], charges[1:]
        currency = kept["currency"]
        at_risk_minor = sum(
            c["amount_minor"] - c["refunded_minor"] for c in extras if c["currency"] == currency
        )
        return self.finding(
            fingerprint_parts=[kept["reference"]],
            order_id=kept["order_id"],
            charge_id=extras[0]["provider_id"],
            amount_at_risk=minor_to_major(at_risk_minor, currency),
            currency=currency,
            details={
                "reference": kept["reference"],
                "kept_charge_id": kept["provider_id"],
                "kept_because": "recorded_by_payments" if kept["recorded"] else "earliest",
                "extra_charge_ids": [c["provider_id"] for c in extras],
                "captures": [
                    {
                        "charge_id": c["provider_id"],
                        "amount_minor": c["amount_minor"],
                        "refunded_minor": c["refunded_minor"],
                        "currency": c["currency"],
                        "created": c["created"].isoformat(),
                    }
                    for c in charges
                ],
                "other_currencies": sorted({c["currency"] for c in extras if c["currency"] != currency}),
            },
        )

    def scope_for(self, subject: IncidentSubject) -> Scope:
        reference = subject.details.get("reference")
        if reference:
            return Scope(references=frozenset({reference}))
        return super().scope_for(subject)
