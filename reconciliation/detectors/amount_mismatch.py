# ruff: noqa: S608 -- only table names and module constants are interpolated; values are parameters.
"""amount_mismatch: the capture that pays for an order differs from it in amount or currency.

Compared: each net capture of a confirmed (or cancelling) order that is the payment's
recorded charge, or any capture when payments recorded none. One incident per charge;
the money at risk is the difference (the whole capture when the currencies differ).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from orders.choices import OrderStatus
from reconciliation.choices import IncidentType, Severity

from .base import DetectionContext, Detector, Finding, IncidentSubject, Scope
from .registry import register
from .sql import fetch, literal, net_captures_cte, orders_cte, payments_cte, with_


@register
class AmountMismatch(Detector):
    name = IncidentType.AMOUNT_MISMATCH
    severity = Severity.HIGH
    description = "The captured amount or currency differs from the order's."
    uses_provider_records = True
    incremental = True

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        head, params = with_(net_captures_cte(ctx.scope), orders_cte(), payments_cte())
        sql = head + (
            "SELECT nc.provider_id, nc.reference, nc.order_id, nc.amount, nc.currency, "
            "o.total, o.currency AS order_currency, p.id AS payment_id "
            "FROM nc JOIN o ON o.id = nc.order_id LEFT JOIN p ON p.order_id = nc.order_id "
            f"WHERE o.status IN ({literal(OrderStatus.CONFIRMED, OrderStatus.CANCELLING)}) "
            "AND (p.provider_charge_id IS NULL OR p.provider_charge_id = nc.provider_id) "
            "AND (nc.amount <> o.total OR nc.currency <> o.currency) "
            "ORDER BY nc.order_id, nc.id"
        )
        yield from self.findings_from(fetch(sql, params))

    def findings_from(self, rows: Iterable[dict]) -> Iterator[Finding]:
        """Findings from rows in the shape and order of find's statement."""
        for row in rows:
            same_currency = row["currency"] == row["order_currency"]
            at_risk = abs(row["amount"] - row["total"]) if same_currency else row["amount"]
            yield self.finding(
                fingerprint_parts=[row["provider_id"]],
                order_id=row["order_id"],
                payment_id=row["payment_id"],
                charge_id=row["provider_id"],
                amount_at_risk=at_risk,
                currency=row["currency"],
                details={
                    "reference": row["reference"],
                    "charged": str(row["amount"]),
                    "charged_currency": row["currency"],
                    "order_total": str(row["total"]),
                    "order_currency": row["order_currency"],
                },
            )

    def scope_for(self, subject: IncidentSubject) -> Scope:
        if subject.charge_id:
            return Scope(charge_ids=frozenset({subject.charge_id}))
        return super().scope_for(subject)
