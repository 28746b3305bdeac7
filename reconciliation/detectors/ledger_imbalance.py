"""ledger_imbalance: the double-entry ledger does not balance.

Per transaction (entries not summing to zero, fewer than two entries, mixed currencies)
and per currency over all accounts. On PostgreSQL a commit-time trigger should make this
impossible; the detector is the proof that it held. Money at risk: the imbalance.
"""

from __future__ import annotations

from collections.abc import Iterator

from payments.selectors import ledger_currency_imbalances, ledger_unbalanced_transactions
from reconciliation.choices import IncidentType, Severity

from .base import DetectionContext, Detector, Finding, IncidentSubject, Scope
from .registry import register


@register
class LedgerImbalance(Detector):
    name = IncidentType.LEDGER_IMBALANCE
    severity = Severity.CRITICAL
    description = "Ledger entries that do not sum to zero."

    def find(self, ctx: DetectionContext) -> Iterator[Finding]:
        for transaction_id in ledger_unbalanced_transactions():
            yield self.finding(
                fingerprint_parts=["transaction", transaction_id],
                details={"ledger_transaction_id": transaction_id},
            )
        for currency, total in sorted(ledger_currency_imbalances().items()):
            yield self.finding(
                fingerprint_parts=["currency", currency],
                amount_at_risk=abs(total),
                currency=currency,
                details={"sum_of_entries": str(total)},
            )

    def scope_for(self, subject: IncidentSubject) -> Scope:
        return Scope()
