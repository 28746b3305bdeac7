"""The proof that the running balances the detectors read held (docs/reconciliation.md,
"Running balance").

ProviderNetByHour (clearing_mismatch's provider net) and ProviderOrderCaptures (the
shared join's duplicate candidates) are kept by triggers in the same statement as the
charges, payments' LedgerBalanceByHour (clearing_mismatch's ledger side) in the same
statement as the ledger entries, so they can only differ from their rows if a trigger
was bypassed (disabled, session_replication_role = replica, a row edited by hand). The
detectors trust them on every pass; this check recomputes each from its rows every
RECONCILE_VERIFY_BALANCES_INTERVAL seconds (beat `reconciliation-verify-balances`, and
`reconcile --verify-balances`) and keeps one read_model_drift incident per table open
while it differs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from payments.selectors import ledger_balance_drift
from reconciliation.choices import IncidentType, Severity
from reconciliation.detectors import Finding
from reconciliation.selectors import provider_captures_drift, provider_net_drift

from .incidents import incidents_auto_resolve, incidents_report

log = logging.getLogger(__name__)

# kept table -> its drift selector
CHECKS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "provider_net_by_hour": provider_net_drift,
    "provider_order_captures": provider_captures_drift,
    # payments' running balance of the ledger, which clearing_mismatch reads the other side from
    "ledger_balance_by_hour": ledger_balance_drift,
}


def fingerprint(model: str) -> str:
    return f"{IncidentType.READ_MODEL_DRIFT}:{model}"


def drift_as_json(row: dict[str, Any]) -> dict[str, Any]:
    """One drift row with JSON-ready values (hours as ISO text, money as text)."""
    return {
        key: value.isoformat() if hasattr(value, "isoformat") else str(value) for key, value in row.items()
    }


def provider_balances_verify() -> dict[str, list[dict[str, Any]]]:
    """Per kept table, the rows where it and the charges differ (empty lists when they
    agree); opens (or keeps) a drift incident for each table that differs and resolves
    the incidents of the tables that agree again."""
    drifts = {model: check() for model, check in CHECKS.items()}
    findings = []
    for model, drift in drifts.items():
        if not drift:
            continue
        log.error("provider running balance drift: %s, %d row(s)", model, len(drift))
        findings.append(
            Finding(
                type=IncidentType.READ_MODEL_DRIFT,
                fingerprint=fingerprint(model),
                severity=Severity.HIGH,
                details={
                    "read_model": model,
                    "differences": len(drift),
                    "first": [drift_as_json(row) for row in drift[:20]],
                    "fix": "find what bypassed the triggers; then rebuild the rows listed from the charges",
                },
            )
        )
    with transaction.atomic():
        incidents_report(findings=findings)
        incidents_auto_resolve(
            incident_type=IncidentType.READ_MODEL_DRIFT,
            still_found={f.fingerprint for f in findings},
            evaluated={fingerprint(model) for model in CHECKS},
        )
    return drifts
